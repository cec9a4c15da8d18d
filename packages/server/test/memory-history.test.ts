/**
 * MemoryHistory specifics (the behaviour every history shares is in contracts/history-contract.ts):
 * a channel idle past historyMetaTtlMs is forgotten by the sweeper, and only then gets a new epoch.
 */
import { afterEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHistory, type MemoryHistoryOptions } from '../src/history/memory-history.js';

/** A controllable clock for the `now` option. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const created: MemoryHistory[] = [];

function history(options: Partial<MemoryHistoryOptions> = {}): MemoryHistory {
  const h = new MemoryHistory({ historySize: 200, historyTtlMs: 300_000, historyMetaTtlMs: 86_400_000, ...options });
  created.push(h);
  return h;
}

afterEach(async () => {
  mock.timers.reset();
  await Promise.all(created.splice(0).map((h) => h.close()));
});

function input(ts: number, n = 0) {
  return { from: 'alice', topic: 't', data: { n }, ts };
}

describe('MemoryHistory', () => {
  it('keeps the epoch while the channel is idle for less than historyMetaTtlMs', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const c = clock();
    const h = history({ historyTtlMs: 1_000, historyMetaTtlMs: 60_000, now: c.now });
    const first = await h.append('group:a', input(c.now()));
    c.advance(30_000);
    mock.timers.tick(1_000); // runs the sweeper: the entry expires, the channel stays
    assert.deepEqual(await h.position('group:a'), { epoch: first.epoch, offset: 1 });
    const second = await h.append('group:a', input(c.now()));
    assert.deepEqual({ epoch: second.epoch, offset: second.offset }, { epoch: first.epoch, offset: 2 });
  });

  it('changes the epoch and restarts offsets when an idle channel is forgotten after historyMetaTtlMs', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const c = clock();
    const h = history({ historyTtlMs: 1_000, historyMetaTtlMs: 60_000, now: c.now });
    const first = await h.append('group:a', input(c.now()));
    await h.append('group:b', input(c.now()));
    c.advance(50_000);
    await h.append('group:b', input(c.now())); // keeps group:b touched
    c.advance(20_000); // group:a idle 70 s, group:b 20 s
    mock.timers.tick(1_000);
    assert.equal(h.channelCount, 1, 'only the idle channel is forgotten');
    const pos = await h.position('group:a');
    assert.equal(pos.offset, 0);
    assert.notEqual(pos.epoch, first.epoch);
    const again = await h.append('group:a', input(c.now()));
    assert.deepEqual({ epoch: again.epoch, offset: again.offset }, { epoch: pos.epoch, offset: 1 });
    assert.equal((await h.position('group:b')).offset, 2, 'the touched channel keeps its offsets');
  });

  it('does not forget an idle channel that still holds publications', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const c = clock();
    // Entries outlive the meta TTL here, so the channel must not lose them (nor its epoch).
    const h = history({ historyTtlMs: 600_000, historyMetaTtlMs: 60_000, now: c.now });
    const first = await h.append('group:a', input(c.now()));
    c.advance(120_000);
    mock.timers.tick(60_000);
    assert.deepEqual(await h.position('group:a'), { epoch: first.epoch, offset: 1 });
  });
});
