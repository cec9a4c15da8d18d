/**
 * Unit tests of MemoryHistory: dense offsets, the size and age bounds of the kept window, paging
 * with read(since, limit), and the rule that the epoch changes only when the channel is forgotten.
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
  it('starts a fresh channel at offset 0 with an empty window', async () => {
    const h = history();
    const pos = await h.position('group:a');
    assert.equal(pos.offset, 0);
    assert.equal(typeof pos.epoch, 'string');
    assert.ok(pos.epoch.length > 0);
    assert.deepEqual(await h.read('group:a', 0, 10), { epoch: pos.epoch, offset: 0, firstOffset: 1, publications: [] });
  });

  it('assigns dense offsets from 1 in one epoch, independently per channel', async () => {
    const h = history();
    const a = [];
    for (let i = 0; i < 5; i++) a.push(await h.append('group:a', input(Date.now(), i)));
    const b = await h.append('group:b', input(Date.now()));
    assert.deepEqual(a.map((p) => p.offset), [1, 2, 3, 4, 5]);
    assert.equal(new Set(a.map((p) => p.epoch)).size, 1, 'one epoch for all appends');
    assert.equal(b.offset, 1, 'another channel counts on its own');
    assert.deepEqual(a[2], { channel: 'group:a', epoch: a[0]!.epoch, offset: 3, from: 'alice', topic: 't', data: { n: 2 }, ts: a[2]!.ts });
    assert.deepEqual(await h.position('group:a'), { epoch: a[0]!.epoch, offset: 5 });
  });

  it('keeps at most historySize publications, dropping the oldest', async () => {
    const h = history({ historySize: 3 });
    for (let i = 0; i < 5; i++) await h.append('group:a', input(Date.now(), i));
    const page = await h.read('group:a', 0, 100);
    assert.equal(page.offset, 5);
    assert.equal(page.firstOffset, 3);
    assert.deepEqual(page.publications.map((p) => p.offset), [3, 4, 5]);
  });

  it('keeps nothing with historySize 0 but still counts offsets', async () => {
    const h = history({ historySize: 0 });
    await h.append('group:a', input(Date.now()));
    const last = await h.append('group:a', input(Date.now()));
    assert.equal(last.offset, 2);
    const page = await h.read('group:a', 0, 100);
    assert.deepEqual({ offset: page.offset, firstOffset: page.firstOffset, publications: page.publications }, { offset: 2, firstOffset: 3, publications: [] });
  });

  it('drops publications older than historyTtlMs by the `now` clock', async () => {
    const c = clock();
    const h = history({ historyTtlMs: 10_000, now: c.now });
    await h.append('group:a', input(c.now(), 1));
    c.advance(6_000);
    await h.append('group:a', input(c.now(), 2));
    c.advance(5_000); // the first is now 11 s old, the second 5 s
    const page = await h.read('group:a', 0, 100);
    assert.deepEqual(page.publications.map((p) => p.offset), [2]);
    assert.equal(page.firstOffset, 2);
    c.advance(6_000);
    const empty = await h.read('group:a', 0, 100);
    assert.deepEqual({ offset: empty.offset, firstOffset: empty.firstOffset, n: empty.publications.length }, { offset: 2, firstOffset: 3, n: 0 });
    assert.equal(empty.epoch, page.epoch, 'expiring entries does not change the epoch');
  });

  it('reads offsets after `since`, oldest first, at most `limit`', async () => {
    const h = history();
    for (let i = 0; i < 10; i++) await h.append('group:a', input(Date.now(), i));
    const offsets = async (since: number, limit: number) => (await h.read('group:a', since, limit)).publications.map((p) => p.offset);
    assert.deepEqual(await offsets(2, 3), [3, 4, 5]);
    assert.deepEqual(await offsets(0, 2), [1, 2]);
    assert.deepEqual(await offsets(8, 100), [9, 10]);
    assert.deepEqual(await offsets(10, 100), [], 'nothing after the latest offset');
    assert.deepEqual(await offsets(50, 100), [], 'a since beyond the latest offset gives nothing');
    assert.deepEqual(await offsets(3, 0), [], 'limit 0 gives nothing');
    const page = await h.read('group:a', 2, 3);
    assert.equal(page.offset, 10, 'the page still reports the latest offset');
    assert.equal(page.firstOffset, 1);
  });

  it('reports the oldest kept offset as firstOffset once the window has moved', async () => {
    const h = history({ historySize: 5 });
    for (let i = 0; i < 20; i++) await h.append('group:a', input(Date.now(), i));
    const page = await h.read('group:a', 3, 100);
    assert.equal(page.firstOffset, 16);
    assert.deepEqual(page.publications.map((p) => p.offset), [16, 17, 18, 19, 20], 'a since before the window starts at the oldest kept');
  });

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

  it('is not ready after close', async () => {
    const h = history();
    assert.equal(h.ready, true);
    await h.close();
    assert.equal(h.ready, false);
  });
});
