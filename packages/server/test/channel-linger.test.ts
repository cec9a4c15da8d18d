/**
 * A node on Redis keeps a channel's pub/sub subscription for `channelLingerMs` after its last
 * session left: a user who reconnects within it is served without an UNSUBSCRIBE and SUBSCRIBE,
 * and the subscription goes once the linger has passed. Checked in Redis itself (PUBSUB NUMSUB).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { channelTag } from '../src/redis/keys.js';
import { api, startNode, TestClient, type TestNode } from './helpers.js';
import { RedisFixture, deletePrefix, redisSkip } from './redis-helpers.js';
import { eventually } from './support/eventually.js';

describe('channel linger (real node on Redis)', { skip: redisSkip }, () => {
  const fixture = new RedisFixture();
  // A key prefix of this run's own (the option takes at most 32 characters).
  const prefix = `sbl:${randomUUID().slice(0, 8)}:`;
  const nodes: TestNode[] = [];
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await deletePrefix(await fixture.client(), prefix);
    await fixture.cleanup();
  });

  async function node(channelLingerMs: number, nodeId: string): Promise<TestNode> {
    const n = await startNode({ engine: 'redis', redisPrefix: prefix, channelLingerMs, nodeId });
    nodes.push(n);
    return n;
  }

  /** How many Redis connections are subscribed to the pub/sub name of `channel` now. */
  let admin: Redis | undefined;
  async function subscribers(channel: string): Promise<number> {
    admin ??= await fixture.client();
    return Number(((await admin.pubsub('NUMSUB', channelTag(prefix, channel))) as [string, number])[1]);
  }

  it('keeps the subscription for a user who comes back within the linger, and drops it after', async () => {
    const n = await node(1500, 'n-linger');

    const first = await TestClient.connect(n, 'alice');
    assert.equal(await subscribers('user:alice'), 1);
    first.ws.close();
    await first.closed;
    await eventually(() => n.node.sessionCount === 0, { message: 'the session released' });
    assert.equal(await subscribers('user:alice'), 1, 'still subscribed right after the last session left');

    const back = await TestClient.connect(n, 'alice');
    const res = await api(n, 'POST', '/v1/publish', { channel: 'user:alice', topic: 'hello', data: 1 });
    assert.equal(res.status, 200);
    const got = await back.next((f) => f.type === 'message' && f.channel === 'user:alice');
    assert.equal(got.data, 1);
    back.ws.close();
    await back.closed;

    await eventually(async () => (await subscribers('user:alice')) === 0, {
      message: 'the subscription dropped after the linger',
      timeoutMs: 10_000,
    });
  });

  it('drops the subscription at once with channelLingerMs 0', async () => {
    const n = await node(0, 'n-nolinger');
    const client = await TestClient.connect(n, 'bob');
    assert.equal(await subscribers('user:bob'), 1);
    client.ws.close();
    await client.closed;
    await eventually(async () => (await subscribers('user:bob')) === 0, { message: 'the subscription dropped', timeoutMs: 2000 });
  });
});
