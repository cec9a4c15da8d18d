/**
 * The broker contract (contracts/broker-contract.ts) on every backend — the cluster protocol
 * (ClusterBroker: codec and routing) over each transport — with every routing strategy. Outage
 * cases run where the harness can take the backend away (Redis: a private redis-server, killed
 * and restarted). Then what only Redis shows: its pub/sub names, a shared subscriber connection.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { Broker } from '../src/broker/broker.js';
import { ClusterBroker } from '../src/broker/cluster-broker.js';
import { createBroker } from '../src/broker/create-broker.js';
import { MemoryBus, MemoryTransport } from '../src/broker/memory-transport.js';
import { RedisTransport } from '../src/broker/redis-transport.js';
import { Router, type Routing } from '../src/broker/routing.js';
import { channelTag, clusterAllName, nodeTag } from '../src/redis/keys.js';
import { RingHolder } from '../src/registry/ring-holder.js';
import { brokerContract, publication, startPair, type BrokerPair, type MakePair } from './contracts/broker-contract.js';
import { RedisFixture, TEST_CLIENT_OPTIONS, connectRedis, redisSkip } from './redis-helpers.js';
import { PrivateServer } from './support/servers.js';

describe('memory broker contract', () => {
  brokerContract(
    async ({ routing, ring }) => {
      const bus = new MemoryBus();
      const make = (node: string) =>
        new ClusterBroker({ transport: new MemoryTransport(bus), router: new Router(routing, node, ring), ring });
      const a = make('node-a');
      const b = make('node-b');
      return { a, b, cleanup: async () => void (await Promise.all([a.close(), b.close()])) };
    },
    { noOutage: true },
  );
});

let pairs = 0;

/** Two nodes' Redis brokers, each with its own command and subscriber connection, as two nodes have them. */
async function redisPair(
  connect: (name: string) => Promise<Redis>,
  prefixBase: string,
  routing: Routing,
  ring: RingHolder,
): Promise<BrokerPair & { clients: Redis[]; prefix: string }> {
  // A prefix per pair, so that nothing in flight from an earlier test can reach this one.
  const prefix = `${prefixBase}${++pairs}:`;
  const clients = await Promise.all(['a', 'a:sub', 'b', 'b:sub'].map((n) => connect(n)));
  const [aPub, aSub, bPub, bSub] = clients as [Redis, Redis, Redis, Redis];
  const make = (node: string, pub: Redis, sub: Redis) =>
    createBroker('redis', { nodeId: node, routing, ring, redis: { redis: pub, sub }, redisPrefix: prefix });
  const a = make('node-a', aPub, aSub);
  const b = make('node-b', bPub, bSub);
  return {
    a,
    b,
    clients,
    prefix,
    cleanup: async () => {
      await Promise.allSettled([a.close(), b.close()]);
      for (const c of clients) c.disconnect();
    },
  };
}

// On a private redis-server, so that the outage case can kill it and start it again.
describe('Redis broker contract', { skip: redisSkip }, () => {
  let server: PrivateServer | undefined;
  after(() => server?.stop());
  const make: MakePair = async ({ routing, ring }) => {
    server ??= await PrivateServer.redis();
    const s = server;
    const connect = async () => {
      // Fail fast like the engine's connections; reconnect quickly.
      const r = new Redis({ ...TEST_CLIENT_OPTIONS, port: s.port, lazyConnect: true, retryStrategy: () => 100 });
      r.on('error', () => undefined);
      await r.connect();
      return r;
    };
    const pair = await redisPair(connect, 'sb:', routing, ring);
    return { ...pair, outage: { down: () => s.stop(), up: () => s.start() } };
  };
  brokerContract(make);
});

describe('Redis transport', { skip: redisSkip }, () => {
  const fixture = new RedisFixture();
  after(() => fixture.cleanup());

  it('subscribes in Redis as the routing says, and close unsubscribes without quitting the connections', async () => {
    const admin = await fixture.client();
    const numsub = async (name: string): Promise<number> => Number(((await admin.pubsub('NUMSUB', name)) as [string, number])[1]);
    for (const routing of ['interest', 'broadcast', 'hash'] as const) {
      const ring = new RingHolder();
      const pair = await redisPair(() => connectRedis(), fixture.prefix, routing, ring);
      try {
        await startPair(pair);
        await pair.b.subscribe('group:ops');
        const p = pair.prefix;
        if (routing === 'broadcast') {
          assert.equal(await numsub(channelTag(p, 'group:ops')), 0, 'broadcast: no per-channel subscription');
          assert.equal(await numsub(clusterAllName(p)), 2, 'broadcast: both nodes listen on the one cluster name');
        } else {
          assert.equal(await numsub(channelTag(p, 'group:ops')), 1, `${routing}: one node has interest in group:ops`);
          assert.equal(await numsub(clusterAllName(p)), 0);
          assert.equal(await numsub(nodeTag(p, 'node-b')), routing === 'hash' ? 1 : 0, 'hash: each node has its own name');
          await pair.b.unsubscribe('group:ops');
          assert.equal(await numsub(channelTag(p, 'group:ops')), 0, 'no interest left after unsubscribe');
        }
        await pair.b.close();
        assert.equal(await numsub(clusterAllName(p)), routing === 'broadcast' ? 1 : 0, 'close unsubscribes');
        assert.equal(await numsub(nodeTag(p, 'node-b')), 0, 'close unsubscribes the node name');
        assert.ok(
          pair.clients.every((c) => c.status === 'ready'),
          'close does not quit the injected connections',
        );
      } finally {
        await pair.cleanup();
      }
    }
  });

  it('reports an undecodable payload and ignores other components on a shared subscriber connection', async () => {
    const ring = new RingHolder();
    const pair = await redisPair(() => connectRedis(), fixture.prefix, 'interest', ring);
    try {
      const got = await startPair(pair);
      await pair.b.subscribe('group:ops');
      // What a RedisRegistry sharing the connection would subscribe to.
      const foreign = `${pair.prefix}{cluster}:registry`;
      await pair.clients[3]!.subscribe(foreign);
      const admin = await fixture.client();
      await admin.publish(foreign, 'up|n1');
      await admin.publish(channelTag(pair.prefix, 'group:ops'), 'x|garbage');
      await pair.a.publish('group:ops', publication('group:ops', 1));
      assert.deepEqual(await got.b.wait('group:ops', 1), [publication('group:ops', 1)]);
      assert.equal(got.b.all.length, 1);
      assert.equal(got.b.errors.length, 1, `one decode error, got ${got.b.errors.map((e) => e.what).join('; ')}`);
      assert.equal((got.b.errors[0]!.err as Error).name, 'WireError');
      assert.match(got.b.errors[0]!.what, /undecodable redis payload/);
    } finally {
      await pair.cleanup();
    }
  });

  for (const [what, options] of [
    ['a fail-fast client (no offline queue)', { ...TEST_CLIENT_OPTIONS, port: 1 }],
    ['a client with the default offline queue', { port: 1, host: '127.0.0.1' }],
  ] as const) {
    it(`rejects a publish within 1 s with ${what} when Redis is unreachable, and is not ready`, async () => {
      const pub = new Redis(options);
      pub.on('error', () => undefined);
      const sub = await fixture.client();
      let broker: Broker | undefined;
      try {
        broker = new ClusterBroker({
          transport: new RedisTransport({ pub, sub, prefix: fixture.prefix }),
          router: new Router('interest', 'n'),
        });
        await broker.start({ message: () => undefined, link: () => undefined, error: () => undefined });
        assert.equal(broker.ready, false);
        const t0 = Date.now();
        await assert.rejects(broker.publish('group:ops', publication('group:ops', 1)), /redis broker unreachable/);
        assert.ok(Date.now() - t0 < 1000, `rejected after ${Date.now() - t0} ms`);
      } finally {
        await broker?.close();
        pub.disconnect();
      }
    });
  }
});

describe('createBroker', () => {
  it('names the valid choices for an unknown broker', () => {
    assert.throws(
      () => createBroker('kafka', { nodeId: 'n', routing: 'interest', ring: new RingHolder() }),
      /^Error: unknown broker "kafka": use one of memory, redis, rabbitmq, nats$/,
    );
  });
});
