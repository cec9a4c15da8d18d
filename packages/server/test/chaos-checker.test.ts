/**
 * The chaos checker's verdicts on made-up histories: lost against told-lost (a recovery-failed
 * in the same epoch, and one that moved the client to a new epoch), duplicates, order, catch-up.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hasSeenLatest, judge, judgeClient, LatestAcked, LEAVE_GRACE_MS, type Acked, type ClientLog } from '../../../chaos/checker.js';

const acked = (n: number, channel = 'group:g', epoch = 'e1', from = 1, at = 1000): Acked[] =>
  Array.from({ length: n }, (_, i) => ({ channel, epoch, offset: from + i, at: at + i * 10 }));

function log(partial: Partial<ClientLog>): ClientLog {
  return { id: 'c', channels: ['group:g'], seen: [], failures: [], drops: [], ...partial };
}

/** A lost sample's position, without the context after it. */
const position = (sample: string) => sample.split(' ')[0];

const seen = (offsets: number[], epoch = 'e1', at = 5000) =>
  offsets.map((offset, i) => ({ channel: 'group:g', epoch, offset, at: at + i }));

describe('chaos checker', () => {
  it('counts an acknowledged message never seen and never announced as lost', () => {
    const v = judgeClient(acked(5), log({ seen: seen([1, 2, 4, 5]) }));
    assert.deepEqual([v.expected, v.lost, v.toldLost, v.duplicated, v.outOfOrder], [5, 1, 0, 0, 0]);
    assert.deepEqual(
      v.lostSample,
      ['group:g@e1:3 (client stayed, last seen there e1:5 at 3983 ms after the ack)'],
      'the position, and where it stood',
    );
  });

  it('counts as told-lost what a recovery-failed covered, in the same epoch and across epochs', () => {
    const sameEpoch = judgeClient(
      acked(10),
      log({
        seen: seen([1, 2, 9, 10]),
        failures: [{ channel: 'group:g', from: { epoch: 'e1', offset: 2 }, to: { epoch: 'e1', offset: 8 }, at: 3000 }],
      }),
    );
    assert.deepEqual([sameEpoch.lost, sameEpoch.toldLost], [0, 6]);
    const newEpoch = judgeClient(
      [...acked(4), ...acked(3, 'group:g', 'e2')],
      log({
        seen: [...seen([1, 2]), ...seen([3], 'e2')],
        failures: [{ channel: 'group:g', from: { epoch: 'e1', offset: 2 }, to: { epoch: 'e2', offset: 2 }, at: 3000 }],
      }),
    );
    assert.deepEqual([newEpoch.lost, newEpoch.toldLost], [0, 4], 'e1:3-4 and e2:1-2');
    // A failure on another channel covers nothing here.
    const elsewhere = judgeClient(
      acked(3),
      log({ seen: seen([1]), failures: [{ channel: 'group:h', from: undefined, to: { epoch: 'e1', offset: 3 }, at: 3000 }] }),
    );
    assert.equal(elsewhere.lost, 2);
  });

  it('measures the delay of live deliveries, leaving out what was acknowledged while the client was away', () => {
    // Acked at 1000, 1010, …, 1090; the client was away from 1025 to 1065 (drop to welcome).
    const all = acked(10);
    const v = judge(all, [
      log({
        seen: all.map((m) => ({ channel: m.channel, epoch: m.epoch, offset: m.offset, at: m.at + (m.offset % 2 ? 100 : 300) })),
        drops: [{ at: 1025, back: 1065 }],
      }),
    ]);
    // Offsets 4-7 (acked 1030-1060) were replays; of the six live ones three came after 100 ms, three after 300.
    assert.equal(v.clients[0]!.liveDelayMs.length, 6);
    assert.deepEqual([v.liveDelayP50Ms, v.liveDelayP99Ms, v.liveDelayMaxMs], [100, 300, 300]);
  });

  it('counts duplicates and out-of-order deliveries, and ignores channels the client is not in', () => {
    const v = judgeClient([...acked(4), ...acked(3, 'group:other')], log({ seen: seen([1, 2, 2, 4, 3]) }));
    assert.deepEqual([v.expected, v.lost, v.duplicated, v.outOfOrder], [4, 0, 1, 1]);
  });

  it('measures catch-up from a drop to the last message acknowledged before the client was back', () => {
    // Acked at 1000…1090; the client dropped at 1025, was back at 1200, and saw 4-10 during 1300-1306.
    const v = judgeClient(
      acked(10),
      log({ seen: [...seen([1, 2, 3], 'e1', 1001), ...seen([4, 5, 6, 7, 8, 9, 10], 'e1', 1300)], drops: [{ at: 1025, back: 1200 }] }),
    );
    assert.deepEqual(v.catchUpMs, [1306 - 1025]);
    const never = judgeClient(acked(3), log({ seen: seen([1]), drops: [{ at: 1005, back: 1100 }] }));
    assert.deepEqual([never.catchUpMs, never.neverCaughtUp], [[], 1]);
  });

  it('sums the clients and takes catch-up quantiles over every drop', () => {
    const v = judge(acked(2), [log({ id: 'a', seen: seen([1, 2]), drops: [{ at: 1000, back: 1100 }] }), log({ id: 'b', seen: seen([1]) })]);
    assert.deepEqual([v.acked, v.lost, v.drops, v.catchUpP95Ms], [2, 1, 1, 4001]);
  });

  it('expects of a client that joined late only what came after its start, in that epoch or a later one', () => {
    const history = [...acked(10), ...acked(2, 'group:g', 'e2')];
    const late = judgeClient(
      history,
      log({ starts: { 'group:g': { epoch: 'e1', offset: 6 } }, seen: [...seen([7, 8, 9, 10]), ...seen([1, 2], 'e2')] }),
    );
    assert.deepEqual([late.expected, late.lost], [6, 0]);
    const missedOne = judgeClient(history, log({ starts: { 'group:g': { epoch: 'e1', offset: 6 } }, seen: seen([7, 9, 10]) }));
    assert.deepEqual(
      [missedOne.expected, missedOne.lost, missedOne.lostSample.map(position)],
      [6, 3, ['group:g@e1:8', 'group:g@e2:1', 'group:g@e2:2']],
    );
  });

  it('does not expect of a client that left what was acknowledged in its last moments', () => {
    // acked(10) is acknowledged at 1000, 1010 … 1090; the client left at 1050 + the grace.
    const v = judgeClient(acked(10), log({ leftAt: 1050 + LEAVE_GRACE_MS, seen: seen([1, 2, 3, 4]) }));
    assert.deepEqual([v.expected, v.lost, v.lostSample.map(position)], [6, 2, ['group:g@e1:5', 'group:g@e1:6']]);
  });

  it('expects, with no grace, all that was acknowledged before a waiting client read its positions', () => {
    // Read at 1050, left much later: offsets 1–6 are expected, 5 and 6 were never seen.
    const awaited = { at: 1050, positions: { 'group:g': { epoch: 'e1', offset: 6 } } };
    const v = judgeClient(acked(10), log({ awaited, leftAt: 9000, seen: seen([1, 2, 3, 4]) }));
    assert.deepEqual([v.expected, v.lost, v.lostSample.map(position)], [6, 2, ['group:g@e1:5', 'group:g@e1:6']]);
    // Offset 6 acknowledged in the millisecond of the read, after it: not waited for, not expected.
    const early = { at: 1050, positions: { 'group:g': { epoch: 'e1', offset: 5 } } };
    assert.equal(judgeClient(acked(10), log({ awaited: early, leftAt: 9000, seen: seen([1, 2, 3, 4, 5]) })).lost, 0);
  });

  it("keeps the highest acknowledged offset per channel as the publishers' lists grow", () => {
    const a: Acked[] = [];
    const b: Acked[] = [];
    const latest = new LatestAcked([a, b]);
    a.push({ channel: 'group:g', epoch: 'e1', offset: 2, at: 1 });
    b.push({ channel: 'group:g', epoch: 'e1', offset: 1, at: 2 }, { channel: 'user:c', epoch: 'e1', offset: 7, at: 3 });
    const first = latest.of(['group:g', 'user:c', 'group:none']);
    assert.deepEqual(
      [...first.latest.values()].map((x) => `${x.channel}:${x.offset}`),
      ['group:g:2', 'user:c:7'],
      'an ack out of order does not go back',
    );
    assert.ok(first.at >= 3);
    // Read on from where it stopped; a new epoch replaces the old one.
    a.push({ channel: 'group:g', epoch: 'e2', offset: 1, at: 4 });
    assert.deepEqual(latest.of(['group:g']).latest.get('group:g'), { channel: 'group:g', epoch: 'e2', offset: 1, at: 4 });
  });

  it('has seen the latest when it saw that offset or started after it, not before', () => {
    const latest = new Map([['group:g', { channel: 'group:g', epoch: 'e1', offset: 3, at: 0 }]]);
    assert.equal(hasSeenLatest(log({ seen: seen([1, 2]) }), latest), false);
    assert.equal(hasSeenLatest(log({ seen: seen([1, 2, 3]) }), latest), true);
    assert.equal(hasSeenLatest(log({ starts: { 'group:g': { epoch: 'e1', offset: 5 } } }), latest), true, 'started after it');
    assert.equal(hasSeenLatest(log({ starts: { 'group:g': { epoch: 'e0', offset: 5 } } }), latest), false, 'another epoch');
  });

  it('judges the same whether given the acknowledgements as a list or indexed by channel', () => {
    const history = [...acked(5), ...acked(5, 'user:c')];
    const l = log({ channels: ['group:g', 'user:c'], seen: seen([1, 2, 3]) });
    const byChannel = new Map([
      ['group:g', history.slice(0, 5)],
      ['user:c', history.slice(5)],
    ]);
    assert.deepEqual(judgeClient(history, l), judgeClient(byChannel, l));
    assert.equal(judgeClient(history, l).lost, 7);
  });
});
