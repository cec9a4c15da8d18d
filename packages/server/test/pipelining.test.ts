/**
 * Publications of one socket are pipelined: the next frame is taken while the store and the broker
 * answer the last, up to PUBLICATIONS_IN_FLIGHT; offsets follow the order the frames were sent in,
 * replies come back in that order, and any other frame waits for the publications before it.
 * First on a publication path whose answers the test holds and releases in reverse, then on every
 * real history store (memory, Redis with a prefix of its own, PostgreSQL with a database of its own).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { PublicationPath } from '../src/index.js';
import { PUBLICATIONS_IN_FLIGHT } from '../src/session/session.js';
import { TestClient, sleep, startNode, type Frame, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';
import { historyStores } from './support/history-stores.js';

/** A publication path that takes each publication at once but answers only when the test says. */
class HeldAnswers implements PublicationPath {
  readonly taken: string[] = [];
  private readonly held: (() => void)[] = [];
  constructor(private readonly inner: PublicationPath) {}

  publish(...args: Parameters<PublicationPath['publish']>) {
    this.taken.push(args[0]);
    const answer = this.inner.publish(...args);
    return new Promise<Awaited<typeof answer>>((resolve, reject) => this.held.push(() => answer.then(resolve, reject)));
  }

  /** Releases every answer held so far, the newest first. */
  releaseNewestFirst(): void {
    for (const release of this.held.splice(0).reverse()) release();
  }
}

const replies = (c: TestClient) => c.frames.filter((f) => f.type === 'reply');

describe('publication pipelining (held answers)', () => {
  let node: TestNode;
  let path: HeldAnswers;
  const open: TestClient[] = [];
  before(async () => {
    node = await startNode({}, 'node', (engine) => {
      path = new HeldAnswers(engine.publication);
      engine.publication = path;
    });
  });
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('takes publications before earlier ones are answered, and replies in frame order when answers come newest first', async () => {
    const alice = await TestClient.connect(node, 'alice');
    const bob = await TestClient.connect(node, 'bob');
    open.push(alice, bob);
    for (let i = 1; i <= 10; i++) alice.send({ type: 'send', id: `s${i}`, to: 'bob', topic: 'chat', data: { i } });
    // A frame that is not a publication waits for the ten to be answered.
    alice.send({ type: 'presence', id: 'after', channel: 'group:x' });
    await eventually(() => assert.equal(path.taken.length, 10, 'all ten taken while none is answered'));
    await sleep(100);
    assert.equal(replies(alice).length, 0, 'no reply before the answers are released');
    path.releaseNewestFirst();
    await alice.next((f) => f.type === 'reply' && f.id === 'after');
    const ids = replies(alice).map((f) => f.id);
    assert.deepEqual(ids, [...Array.from({ length: 10 }, (_, i) => `s${i + 1}`), 'after'], 'replies in the order the frames were sent');
    assert.deepEqual(
      replies(alice)
        .slice(0, 10)
        .map((f) => f.offset),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      'offsets in the order sent',
    );
    const got = await bob.waitMessages(10, 'user:bob');
    assert.deepEqual(
      got.map((f) => f.data.i),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });

  it(`holds a socket to ${PUBLICATIONS_IN_FLIGHT} unanswered publications, then takes the rest as answers come`, async () => {
    path.taken.length = 0;
    const carol = await TestClient.connect(node, 'carol');
    open.push(carol);
    const total = PUBLICATIONS_IN_FLIGHT + 36;
    for (let i = 1; i <= total; i++) carol.send({ type: 'publish', id: i, channel: 'user:carol', topic: 't', data: { i } });
    await eventually(() => assert.equal(path.taken.length, PUBLICATIONS_IN_FLIGHT));
    await sleep(200);
    assert.equal(path.taken.length, PUBLICATIONS_IN_FLIGHT, 'no more taken while the window is full');
    // Release until every frame is answered: each answer lets one more in.
    await eventually(
      () => {
        path.releaseNewestFirst();
        assert.equal(replies(carol).length, total);
      },
      { timeoutMs: 5000, intervalMs: 5 },
    );
    const got = replies(carol);
    assert.deepEqual(
      got.map((f) => f.id),
      Array.from({ length: total }, (_, i) => i + 1),
    );
    assert.ok(
      got.every((f, i) => f.ok && f.offset === i + 1),
      'every one accepted, offsets in order',
    );
  });

  it('answers a refused publication in its place among the accepted ones', async () => {
    const dave = await TestClient.connect(node, 'dave');
    open.push(dave);
    dave.send({ type: 'send', id: 1, to: 'erin', topic: 'chat' });
    dave.send({ type: 'publish', id: 2, channel: 'group:not-mine', topic: 'chat' });
    dave.send({ type: 'publish', id: 3, channel: 'nonsense', topic: 'chat' });
    dave.send({ type: 'send', id: 4, to: 'erin', topic: 'chat' });
    await eventually(() => {
      path.releaseNewestFirst();
      assert.equal(replies(dave).length, 4);
    });
    assert.deepEqual(
      replies(dave).map((f) => [f.id, f.ok, f.error?.code]),
      [
        [1, true, undefined],
        [2, false, 'forbidden'],
        [3, false, 'bad_frame'],
        [4, true, undefined],
      ],
    );
  });
});

const STORES = historyStores('pl');

for (const store of STORES) {
  describe(`publication pipelining on ${store.name}`, { skip: store.skip }, () => {
    let node: TestNode;
    before(async () => {
      await store.setUp?.();
      node = await startNode({ ...store.options(), rateLimitPerSecond: 10_000, rateLimitBurst: 10_000 });
    });
    after(async () => {
      await node?.stop();
      await store.tearDown?.();
    });

    it('keeps the order of 1,000 publications sent without waiting, over two channels, across turns', async () => {
      const n = randomUUID().slice(0, 8);
      const sender = await TestClient.connect(node, `s-${n}`, { groups: [`a-${n}`, `b-${n}`] });
      const reader = await TestClient.connect(node, `r-${n}`, { groups: [`a-${n}`, `b-${n}`] });
      const total = 1000;
      const channelOf = (i: number) => (i % 3 === 0 ? `group:b-${n}` : `group:a-${n}`);
      // In bursts over many event-loop turns, so the store sees many batches while others are out.
      for (let i = 1; i <= total; i++) {
        sender.send({ type: 'publish', id: i, channel: channelOf(i), topic: 't', data: { i } });
        if (i % 25 === 0) await new Promise((r) => setImmediate(r));
      }
      await eventually(() => assert.equal(replies(sender).length, total), { timeoutMs: 20_000 });
      const got: Frame[] = replies(sender);
      assert.deepEqual(
        got.map((f) => f.id),
        Array.from({ length: total }, (_, i) => i + 1),
        'replies in frame order',
      );
      for (const channel of [`group:a-${n}`, `group:b-${n}`]) {
        const offsets = got.filter((f) => channelOf(f.id as number) === channel).map((f) => f.offset as number);
        assert.ok(
          offsets.every((o, i) => o === i + 1),
          `${channel}: offsets 1..${offsets.length} in the order sent`,
        );
        const seen = await reader.waitMessages(offsets.length, channel, 20_000);
        const sent = got.filter((f) => channelOf(f.id as number) === channel).map((f) => f.id);
        assert.deepEqual(
          seen.map((f) => f.data.i),
          sent,
          `${channel}: the reader sees them in the order sent`,
        );
      }
      await Promise.all([sender.close(), reader.close()]);
    });
  });
}
