/**
 * A node on Redis says when it loses Redis and when Redis is back (operations.md, "Logs"): one
 * warning naming Redis and the node id, one info line on return, never the password of REDIS_URL.
 * On a private redis-server with a password, stopped and started again under a running node.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redisSkip } from './redis-helpers.js';
import { startNode, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';
import { PrivateServer } from './support/servers.js';

const PASSWORD = 'pw-9f8e7d6c5b4a';

describe('Redis link logging', { skip: redisSkip }, () => {
  let redis: PrivateServer | undefined;
  let node: TestNode | undefined;
  after(async () => {
    await node?.stop();
    await redis?.stop();
  });

  it('logs the loss of Redis once at warn and its return at info, with the node id and without the password', async () => {
    redis = await PrivateServer.redis(['--requirepass', PASSWORD]);
    node = await startNode({ engine: 'redis', redisUrl: `redis://:${PASSWORD}@127.0.0.1:${redis.port}`, nodeId: 'n-link' });
    const lines = () =>
      node!.logs.map((l) => JSON.parse(l) as { level: number; msg: string; node: string; redis?: string; connection?: string });
    await redis.stop();
    const lost = await eventually(() => {
      const found = lines().filter((l) => l.msg === 'Redis connection lost');
      return found.length === 2 && found; // the command and the subscriber connection
    });
    for (const line of lost)
      assert.deepEqual([line.level, line.node, line.redis], [40, 'n-link', `redis://:[REDACTED]@127.0.0.1:${redis.port}`]);
    assert.deepEqual(lost.map((l) => l.connection).sort(), ['command', 'subscriber']);
    assert.equal((await fetch(`${node.url}/readyz`)).status, 503);
    // ioredis retries many times meanwhile: still one line per connection.
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(lines().filter((l) => l.msg === 'Redis connection lost').length, 2);

    await redis.start();
    const back = await eventually(
      () => {
        const found = lines().filter((l) => l.msg === 'Redis connection back');
        return found.length === 2 && found;
      },
      { timeoutMs: 10_000 },
    );
    for (const line of back) assert.deepEqual([line.level, line.node], [30, 'n-link']);
    await eventually(async () => (await fetch(`${node!.url}/readyz`)).status === 200, { timeoutMs: 10_000 });
    assert.ok(!node.logs.some((l) => l.includes(PASSWORD)), 'the password is never logged');
  });
});
