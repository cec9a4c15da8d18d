/**
 * The registry contract run against every backend: MemoryRegistry (an instance per node on one
 * shared MemoryRoster) and RedisRegistry (an instance per node, each with its own connections).
 * Then what only leases in Redis do: a node that stops renewing disappears by itself.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { MemoryRegistry, MemoryRoster } from '../src/registry/memory-registry.js';
import { RedisRegistry, type RedisRegistryOptions } from '../src/registry/redis-registry.js';
import type { NodeInfo } from '../src/registry/registry.js';
import { eventually, registryContract, type RegistryHarness } from './contracts/registry-contract.js';
import { RedisFixture, connectRedis, redisSkip } from './redis-helpers.js';

describe('MemoryRegistry contract', () => {
  registryContract(async () => {
    const roster = new MemoryRoster();
    const opened: MemoryRegistry[] = [];
    return {
      open: async () => {
        const registry = new MemoryRegistry(roster);
        opened.push(registry);
        return registry;
      },
      cleanup: async () => void (await Promise.all(opened.map((r) => r.close()))),
    };
  });
});

let clusters = 0;

/** A Redis cluster namespace whose instances each get their own command and subscriber connection. */
function redisHarness(
  fixture: RedisFixture,
  options: Partial<RedisRegistryOptions> = {},
): RegistryHarness & { prefix: string; last: () => { registry: RedisRegistry; redis: Redis } } {
  const prefix = `${fixture.prefix}${++clusters}:`;
  const opened: { registry: RedisRegistry; redis: Redis; sub: Redis }[] = [];
  return {
    prefix,
    async open() {
      const [redis, sub] = await Promise.all([connectRedis(), connectRedis()]);
      const registry = new RedisRegistry({ redis, sub, prefix, ...options });
      opened.push({ registry, redis, sub });
      return registry;
    },
    last: () => opened[opened.length - 1]!,
    async cleanup() {
      await Promise.allSettled(opened.map((o) => o.registry.close()));
      for (const o of opened) {
        o.redis.disconnect();
        o.sub.disconnect();
      }
    },
  };
}

function info(node: string, connections = 0): NodeInfo {
  return { node, url: `http://127.0.0.1:9${node.length}00`, connections, startedAt: 1_732_370_000_000 };
}

describe('RedisRegistry contract', { skip: redisSkip }, () => {
  const fixture = new RedisFixture();
  after(() => fixture.cleanup());

  registryContract(async () => redisHarness(fixture));

  it('drops a node whose lease lapses and tells the listeners of another instance', async () => {
    const h = redisHarness(fixture, { nodeLeaseMs: 1500 });
    try {
      const doomed = await h.open();
      const doomedRedis = h.last().redis;
      const observer = await h.open();
      await observer.register(info('n-alive'));
      await doomed.register(info('n-doomed'));
      const seen: string[][] = [];
      observer.onChange((nodes) => seen.push(nodes.map((n) => n.node)));
      await eventually(
        () => seen,
        (s) => s.some((l) => l.includes('n-doomed')),
        'a list with n-doomed',
      );

      // A crash as the cluster sees it: no close, no goodbye, the renewals just stop.
      doomedRedis.disconnect();
      const t0 = Date.now();
      await eventually(
        () => seen,
        (s) => s[s.length - 1]!.join() === 'n-alive',
        'a list without n-doomed',
        8000,
      );
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 1500 + 3000, `noticed ${elapsed} ms after the crash, lease 1500 ms`);
      assert.deepEqual(
        (await observer.nodes()).map((n) => n.node),
        ['n-alive'],
      );
    } finally {
      await h.cleanup();
    }
  });

  it('keeps a registered node listed past its lease by renewing it', async () => {
    const h = redisHarness(fixture, { nodeLeaseMs: 600 });
    try {
      const a = await h.open();
      await a.register(info('n1'));
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(await a.nodes(), [info('n1')]);
    } finally {
      await h.cleanup();
    }
  });

  it('calls a new listener with the current list, then only when the set of nodes changes', async () => {
    const h = redisHarness(fixture, { nodeLeaseMs: 300 });
    try {
      const a = await h.open();
      await a.register(info('n1', 1));
      const seen: string[][] = [];
      a.onChange((nodes) => seen.push(nodes.map((n) => `${n.node}/${n.connections}`)));
      await eventually(
        () => seen.length,
        (n) => n > 0,
        'the first call',
      );
      assert.deepEqual(seen, [['n1/1']]);
      await a.update(info('n1', 2));
      // Several polls (every 100 ms) pass: a load change is not a membership change.
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(seen, [['n1/1']]);
    } finally {
      await h.cleanup();
    }
  });

  it('subscribes to change events once its subscriber connection is back, when the first SUBSCRIBE failed', async () => {
    const prefix = `${fixture.prefix}late:`;
    const redis = await fixture.client();
    const name = `sbtest-regsub-${randomUUID().slice(0, 8)}`;
    const sub = await fixture.client({ connectionName: name, retryStrategy: () => 300 });
    const registry = new RedisRegistry({ redis, sub, prefix, nodeLeaseMs: 600 });
    try {
      const list = (await redis.client('LIST')) as string;
      const id = list
        .split('\n')
        .find((l) => l.includes(` name=${name} `))
        ?.match(/^id=(\d+) /)?.[1];
      // Listen while the connection is down: that SUBSCRIBE is refused and ioredis forgets it.
      const listening = new Promise<void>((resolve) =>
        sub.once('reconnecting', () => {
          registry.onChange(() => undefined);
          resolve();
        }),
      );
      assert.equal(await redis.client('KILL', 'ID', id!), 1);
      await listening;
      const numsub = async (): Promise<number> =>
        Number(((await redis.pubsub('NUMSUB', `${prefix}{cluster}:registry`)) as [string, number])[1]);
      await eventually(numsub, (n) => n === 1, 'the change channel subscribed once the connection is back');
    } finally {
      await registry.close();
    }
  });

  it('does not see the nodes of a cluster under another prefix', async () => {
    const one = redisHarness(fixture);
    const two = redisHarness(fixture);
    try {
      await (await one.open()).register(info('n1'));
      await (await two.open()).register(info('n2'));
      assert.deepEqual(
        (await (await one.open()).nodes()).map((n) => n.node),
        ['n1'],
      );
    } finally {
      await Promise.all([one.cleanup(), two.cleanup()]);
    }
  });

  it('is not ready while its connection is down', async () => {
    const h = redisHarness(fixture);
    try {
      const a = await h.open();
      await a.register(info('n1'));
      assert.equal(a.ready, true);
      h.last().redis.disconnect();
      await eventually(
        () => a.ready,
        (ready) => !ready,
        'not ready',
      );
      await assert.rejects(a.nodes());
    } finally {
      await h.cleanup();
    }
  });
});
