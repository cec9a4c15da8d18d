/**
 * The History contract: what every history backend must do, run against each of them from
 * history.contract.test.ts. Time-based rules are checked with real `ts` values (old publications
 * are appended with old timestamps), so no backend needs a fake clock.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { History } from '../../src/history/history.js';
import type { PublicationInput } from '../../src/publication.js';

/** The limits a history is built with (the node's options of the same names). */
export interface HistoryLimits {
  historySize: number;
  historyTtlMs: number;
  historyMetaTtlMs: number;
  idempotencyWindowMs: number;
}

export const DEFAULT_LIMITS: HistoryLimits = {
  historySize: 200,
  historyTtlMs: 300_000,
  historyMetaTtlMs: 86_400_000,
  idempotencyWindowMs: 300_000,
};

/**
 * Opens `count` histories over one fresh, empty store, as `count` nodes of one cluster would have
 * them (a backend whose instances cannot share state hands out one instance `count` times). The
 * test file closes them and deletes what they stored.
 */
export type OpenHistories = (limits: HistoryLimits, count: number) => Promise<History[]>;

function input(n: number, ts = Date.now()): PublicationInput {
  return { from: 'alice', topic: 'chat', data: { n }, ts };
}

/** Registers the history contract tests (call inside a `describe`). */
export function historyContract(open: OpenHistories): void {
  const one = async (limits: Partial<HistoryLimits> = {}): Promise<History> => (await open({ ...DEFAULT_LIMITS, ...limits }, 1))[0]!;

  it('starts a fresh channel at offset 0 with an empty window and a stable epoch', async () => {
    const h = await one();
    const pos = await h.position('group:a');
    assert.equal(pos.offset, 0);
    assert.match(pos.epoch, /^[A-Za-z0-9_-]+$/, 'a non-empty base64url epoch');
    assert.deepEqual(await h.position('group:a'), pos, 'asking again does not start another epoch');
    assert.deepEqual(await h.read('group:a', 0, 10), { epoch: pos.epoch, offset: 0, firstOffset: 1, publications: [] });
    const first = await h.append('group:a', input(1));
    assert.deepEqual(
      { epoch: first.epoch, offset: first.offset },
      { epoch: pos.epoch, offset: 1 },
      'the first append keeps the epoch clients were told',
    );
  });

  it('assigns dense offsets from 1 in one epoch, independently per channel', async () => {
    const h = await one();
    const a = [];
    for (let i = 0; i < 5; i++) a.push(await h.append('group:a', input(i)));
    const b = await h.append('group:b', input(9));
    assert.deepEqual(
      a.map((p) => p.offset),
      [1, 2, 3, 4, 5],
    );
    assert.equal(new Set(a.map((p) => p.epoch)).size, 1, 'one epoch for all appends');
    assert.equal(b.offset, 1, 'another channel counts on its own');
    assert.deepEqual(a[2], {
      channel: 'group:a',
      epoch: a[0]!.epoch,
      offset: 3,
      from: 'alice',
      topic: 'chat',
      data: { n: 2 },
      ts: a[2]!.ts,
    });
    assert.deepEqual(await h.position('group:a'), { epoch: a[0]!.epoch, offset: 5 });
    assert.deepEqual(await h.read('group:a', 0, 100), { epoch: a[0]!.epoch, offset: 5, firstOffset: 1, publications: a });
  });

  it('reads back exactly what was appended, whatever the data, sender, topic and channel', async () => {
    const h = await one();
    const inputs: PublicationInput[] = [
      { from: null, topic: 'sys', data: null, ts: Date.now() },
      { from: 'a|b"c\\d', topic: 'to|pic\n', data: 'm|1|e|{"x":1}', ts: Date.now() },
      {
        from: 'bob',
        topic: 'emoji',
        data: { text: 'héllo 👋 \u2028\u2029 </script>', list: [1, -2.5, 1e21, true, false, null, []], nested: { a: { b: { c: 'd' } } } },
        ts: Date.now(),
      },
      { from: 'carol', topic: 'num', data: 0, ts: Date.now() },
    ];
    for (const channel of ['group:ops', 'user:a|b', 'group:{x}y}', 'broadcast']) {
      const pubs = [];
      for (const i of inputs) pubs.push(await h.append(channel, i));
      assert.deepEqual(
        pubs.map(({ channel: c, offset, from, topic, data, ts }) => ({ c, offset, from, topic, data, ts })),
        inputs.map((i, n) => ({ c: channel, offset: n + 1, ...i })),
      );
      assert.deepEqual((await h.read(channel, 0, 10)).publications, pubs, `read of ${channel}`);
    }
  });

  it('keeps at most historySize publications, dropping the oldest', async () => {
    const h = await one({ historySize: 3 });
    for (let i = 0; i < 5; i++) await h.append('group:a', input(i));
    const page = await h.read('group:a', 0, 100);
    assert.equal(page.offset, 5);
    assert.equal(page.firstOffset, 3);
    assert.deepEqual(
      page.publications.map((p) => p.offset),
      [3, 4, 5],
    );
    assert.deepEqual(
      page.publications.map((p) => p.data),
      [{ n: 2 }, { n: 3 }, { n: 4 }],
    );
  });

  it('keeps nothing with historySize 0 but still counts offsets', async () => {
    const h = await one({ historySize: 0 });
    await h.append('group:a', input(1));
    const last = await h.append('group:a', input(2));
    assert.equal(last.offset, 2);
    const page = await h.read('group:a', 0, 100);
    assert.deepEqual(
      { offset: page.offset, firstOffset: page.firstOffset, publications: page.publications },
      { offset: 2, firstOffset: 3, publications: [] },
    );
  });

  it('drops publications older than historyTtlMs by their ts, keeping the epoch and offsets', async () => {
    const h = await one({ historyTtlMs: 10_000 });
    const now = Date.now();
    await h.append('group:a', input(1, now - 60_000));
    await h.append('group:a', input(2, now - 11_000));
    const kept = await h.append('group:a', input(3, now - 1_000));
    const page = await h.read('group:a', 0, 100);
    assert.deepEqual(page.publications, [kept]);
    assert.equal(page.firstOffset, 3);
    assert.equal(page.offset, 3);
    assert.equal(page.epoch, kept.epoch);
    await h.append('group:b', input(1, now - 20_000));
    await h.append('group:b', input(2, now - 20_000));
    const gone = await h.read('group:b', 0, 100);
    assert.deepEqual(
      { offset: gone.offset, firstOffset: gone.firstOffset, n: gone.publications.length },
      { offset: 2, firstOffset: 3, n: 0 },
      'all expired: an empty window after the latest offset',
    );
    const next = await h.append('group:b', input(3));
    assert.deepEqual({ epoch: next.epoch, offset: next.offset }, { epoch: gone.epoch, offset: 3 }, 'expiry does not restart the channel');
    assert.deepEqual((await h.read('group:b', 0, 100)).publications, [next]);
  });

  it('reads offsets after `since`, oldest first, at most `limit`', async () => {
    const h = await one();
    for (let i = 0; i < 10; i++) await h.append('group:a', input(i));
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
    const h = await one({ historySize: 5 });
    for (let i = 0; i < 20; i++) await h.append('group:a', input(i));
    const page = await h.read('group:a', 3, 100);
    assert.equal(page.firstOffset, 16);
    assert.deepEqual(
      page.publications.map((p) => p.offset),
      [16, 17, 18, 19, 20],
      'a since before the window starts at the oldest kept',
    );
  });

  it('appends a key once per channel within the window and answers repeats with the original position', async () => {
    const h = await one();
    const first = await h.appendOnce('group:a', input(1), 'k1');
    assert.equal(first.duplicate, false);
    assert.ok(!first.duplicate);
    assert.deepEqual({ offset: first.pub.offset, data: first.pub.data }, { offset: 1, data: { n: 1 } });
    await h.append('group:a', input(2));
    const again = await h.appendOnce('group:a', input(99), 'k1');
    assert.deepEqual(again, { duplicate: true, position: { epoch: first.pub.epoch, offset: 1 } });
    assert.equal((await h.position('group:a')).offset, 2, 'the repeat appended nothing');
    const other = await h.appendOnce('group:a', input(3), 'k2');
    assert.ok(!other.duplicate && other.pub.offset === 3, 'another key appends');
    const elsewhere = await h.appendOnce('group:b', input(4), 'k1');
    assert.ok(!elsewhere.duplicate && elsewhere.pub.offset === 1, 'keys are per channel');
    assert.deepEqual(
      (await h.read('group:a', 0, 10)).publications.map((p) => p.data),
      [{ n: 1 }, { n: 2 }, { n: 3 }],
    );
  });

  it('forgets an idempotency key after the window', async () => {
    const h = await one({ idempotencyWindowMs: 200 });
    await h.appendOnce('group:a', input(1), 'k');
    await new Promise((r) => setTimeout(r, 600));
    const later = await h.appendOnce('group:a', input(2), 'k');
    assert.ok(!later.duplicate, 'a repeat after the window is a new publication');
    assert.equal(later.pub.offset, 2);
  });

  it('gives appends called without waiting offsets in call order, across event-loop turns', async () => {
    // A session's pipelined publications: the next is called before the last is answered.
    const h = await one();
    const calls: Promise<{ offset: number }>[] = [];
    for (let i = 0; i < 300; i++) {
      calls.push(
        i % 4 === 0
          ? h.appendOnce('group:o', input(i), `k${i}`).then((r) => (r.duplicate ? r.position : r.pub))
          : h.append('group:o', input(i)),
      );
      if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    const offsets = (await Promise.all(calls)).map((p) => p.offset);
    assert.deepEqual(
      offsets,
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
  });

  it('gives concurrent appends from two nodes distinct dense offsets in one epoch', async () => {
    const [a, b] = await open(DEFAULT_LIMITS, 2);
    const pubs = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a! : b!).append('group:hot', input(i))));
    assert.deepEqual(
      pubs.map((p) => p.offset).sort((x, y) => x - y),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    assert.equal(new Set(pubs.map((p) => p.epoch)).size, 1);
    const page = await a!.read('group:hot', 0, 100);
    assert.deepEqual(
      page.publications,
      [...pubs].sort((x, y) => x.offset - y.offset),
      'each offset holds the publication it was given',
    );
    assert.deepEqual(await b!.position('group:hot'), { epoch: pubs[0]!.epoch, offset: 40 });
  });

  it('appends a key once when two nodes race with it', async () => {
    const [a, b] = await open(DEFAULT_LIMITS, 2);
    const results = await Promise.all([
      a!.appendOnce('group:a', input(1), 'race'),
      b!.appendOnce('group:a', input(2), 'race'),
      a!.appendOnce('group:a', input(3), 'race'),
    ]);
    const fresh = results.filter((r) => !r.duplicate);
    assert.equal(fresh.length, 1, 'exactly one append');
    const pub = fresh[0]!.duplicate ? undefined : fresh[0]!.pub;
    for (const r of results) if (r.duplicate) assert.deepEqual(r.position, { epoch: pub!.epoch, offset: pub!.offset });
    assert.equal((await a!.position('group:a')).offset, 1);
  });

  it('is ready until closed', async () => {
    const h = await one();
    assert.equal(h.ready, true);
    await h.close();
    assert.equal(h.ready, false);
    await h.close(); // idempotent
  });
}
