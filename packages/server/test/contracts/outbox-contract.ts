/**
 * The webhook outbox contract: what every outbox (memory, Redis, PostgreSQL) must do, run from
 * outbox.contract.test.ts. Times are explicit arguments, so no backend needs a fake clock.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { WebhookEvent, WebhookOutbox } from '../../src/webhooks/outbox.js';

/** `count` outboxes over one fresh, empty store, as `count` nodes would have them. */
export type OpenOutboxes = (count: number) => Promise<WebhookOutbox[]>;

const event = (id: string, extra: Record<string, unknown> = {}): WebhookEvent => ({
  id,
  type: 'user.online',
  ts: 1,
  user: 'bob',
  ...extra,
});

/** Registers the outbox contract tests (call inside a `describe`). */
export function outboxContract(open: OpenOutboxes): void {
  it('hands an event out once it is due, with what was queued', async () => {
    const [o] = await open(1);
    assert.equal(await o!.add(event('a', { node: 'n1' }), 1000, 100), 'added');
    assert.deepEqual(await o!.claim(999, 5000, 10), [], 'not before it is due');
    assert.deepEqual(await o!.claim(1000, 5000, 10), [{ event: event('a', { node: 'n1' }), attempts: 0 }]);
    assert.equal(await o!.size(), 1, 'claimed is not done');
  });

  it('queues an id once', async () => {
    const [o] = await open(1);
    assert.equal(await o!.add(event('a'), 10, 100), 'added');
    assert.equal(await o!.add(event('a', { user: 'other' }), 10, 100), 'duplicate');
    assert.equal(await o!.size(), 1);
    assert.deepEqual(
      (await o!.claim(10, 20, 10)).map((c) => c.event.user),
      ['bob'],
    );
  });

  it('leases a claim: nobody gets it again until the lease lapses, then one node does', async () => {
    const [a, b] = await open(2);
    await a!.add(event('a'), 10, 100);
    assert.equal((await a!.claim(10, 100, 10)).length, 1);
    assert.deepEqual(await b!.claim(50, 150, 10), [], 'leased to the first');
    assert.deepEqual(await a!.claim(99, 150, 10), [], 'not even to itself');
    const again = await b!.claim(100, 200, 10);
    assert.deepEqual(
      again.map((c) => c.event.id),
      ['a'],
      'its lease lapsed (the node died): another node takes it',
    );
  });

  it('gives concurrent claims from two nodes disjoint events, every one of them', async () => {
    const [a, b] = await open(2);
    for (let i = 0; i < 30; i++) await a!.add(event(`e${i}`), i, 100);
    const claims = await Promise.all([
      a!.claim(100, 1000, 7),
      b!.claim(100, 1000, 7),
      a!.claim(100, 1000, 7),
      b!.claim(100, 1000, 7),
      a!.claim(100, 1000, 7),
    ]);
    const ids = claims.flat().map((c) => c.event.id);
    assert.equal(ids.length, 30);
    assert.equal(new Set(ids).size, 30, 'no event claimed twice');
  });

  it('hands out the earliest due first, at most max', async () => {
    const [o] = await open(1);
    await o!.add(event('late'), 30, 100);
    await o!.add(event('early'), 10, 100);
    await o!.add(event('mid'), 20, 100);
    assert.deepEqual(
      (await o!.claim(100, 1000, 2)).map((c) => c.event.id),
      ['early', 'mid'],
    );
  });

  it('forgets what is done, and reschedules a retry with its attempts', async () => {
    const [o] = await open(1);
    await o!.add(event('a'), 10, 100);
    await o!.add(event('b'), 10, 100);
    const [first, second] = await o!.claim(10, 20, 10);
    await o!.done(first!.event.id);
    await o!.retry(second!, 3, 500);
    assert.equal(await o!.size(), 1);
    assert.deepEqual(await o!.claim(499, 600, 10), [], 'not before the retry is due');
    assert.deepEqual(await o!.claim(500, 600, 10), [{ event: second!.event, attempts: 3 }]);
    await o!.retry(first!, 1, 0); // done already: nothing comes back
    assert.deepEqual(await o!.claim(1000, 2000, 10), [{ event: second!.event, attempts: 3 }], 'only the one still queued');
  });

  it('queues nothing past max', async () => {
    const [o] = await open(1);
    assert.equal(await o!.add(event('a'), 10, 2), 'added');
    assert.equal(await o!.add(event('b'), 10, 2), 'added');
    assert.equal(await o!.add(event('c'), 10, 2), 'full');
    assert.equal(await o!.size(), 2);
  });
}
