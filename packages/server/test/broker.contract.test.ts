/**
 * The broker contract run against every backend: MemoryBroker (two brokers on one MemoryBus) and
 * RedisBroker with interest and broadcast routing (two brokers, each with its own pub and sub
 * connection, as two nodes have them). Then what only Redis can do: lose its subscriber
 * connection, be unreachable.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MemoryBroker, MemoryBus } from '../src/broker/memory-broker.js';
import { RedisBroker, type RedisBrokerOptions } from '../src/broker/redis-broker.js';
import { broadcastName, channelTag, type Routing } from '../src/broker/redis-wire.js';
import { brokerContract, publication, startPair, type BrokerPair } from './contracts/broker-contract.js';
import { eventually } from './contracts/registry-contract.js';
import { RedisFixture, TEST_CLIENT_OPTIONS, connectRedis, redisSkip } from './redis-helpers.js';

describe('MemoryBroker contract', () => {
  brokerContract(async () => {
    const bus = new MemoryBus();
    const a = new MemoryBroker(bus);
    const b = new MemoryBroker(bus);
    return { a, b, cleanup: async () => void (await Promise.all([a.close(), b.close()])) };
  });
});

/** Two Redis nodes' brokers and their connections (sub connections are named, to find and kill them). */
interface RedisPair extends BrokerPair {
  a: RedisBroker;
  b: RedisBroker;
  prefix: string;
  clients: { aPub: Redis; aSub: Redis; bPub: Redis; bSub: Redis };
  bSubName: string;
}

let pairs = 0;

async function redisPair(fixture: RedisFixture, routing: Routing, extra: Partial<RedisBrokerOptions> = {}): Promise<RedisPair> {
  // A prefix per pair, so that nothing in flight from an earlier test can reach this one.
  const prefix = `${fixture.prefix}${++pairs}:`;
  const bSubName = `sbtest-sub-${randomUUID().slice(0, 8)}`;
  const [aPub, aSub, bPub, bSub] = await Promise.all([connectRedis(), connectRedis(), connectRedis(), connectRedis({ connectionName: bSubName })]);
  const a = new RedisBroker({ pub: aPub, sub: aSub, prefix, routing });
  const b = new RedisBroker({ pub: bPub, sub: bSub, prefix, routing, ...extra });
  const clients = { aPub, aSub, bPub, bSub };
  return {
    a,
    b,
    prefix,
    clients,
    bSubName,
    cleanup: async () => {
      await Promise.allSettled([a.close(), b.close()]);
      for (const c of Object.values(clients)) c.disconnect();
    },
  };
}

/** The id of the live connection named `name`, from CLIENT LIST. */
async function clientId(admin: Redis, name: string): Promise<string | undefined> {
  const list = (await admin.client('LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  return line?.match(/^id=(\d+) /)?.[1];
}

for (const routing of ['interest', 'broadcast'] as const) {
  describe(`RedisBroker contract (${routing} routing)`, { skip: redisSkip }, () => {
    const fixture = new RedisFixture();
    after(() => fixture.cleanup());

    brokerContract(() => redisPair(fixture, routing));

    it('resumes delivery on every channel after its subscriber connection is killed', async () => {
      const pair = await redisPair(fixture, routing);
      try {
        const got = await startPair(pair);
        const channels = ['group:ops', 'group:dev', 'user:bob'];
        for (const channel of channels) await pair.b.subscribe(channel);
        for (const channel of channels) await pair.a.publish(channel, publication(channel, 1));
        for (const channel of channels) await got.b.wait(channel, 1);

        const admin = await fixture.client();
        const before = await clientId(admin, pair.bSubName);
        assert.ok(before, 'the subscriber connection is listed');
        const reconnecting = new Promise((resolve) => pair.clients.bSub.once('reconnecting', resolve));
        // Kill by id, not `CLIENT KILL TYPE pubsub`: other test files share this Redis.
        assert.equal(await admin.client('KILL', 'ID', before), 1);
        await reconnecting;

        // Nothing re-subscribes but ioredis: keep publishing until each channel hears again.
        await eventually(
          async () => {
            for (const channel of channels) await pair.a.publish(channel, publication(channel, 2));
            return channels.map((channel) => got.b.on(channel).length);
          },
          (counts) => counts.every((n) => n >= 2),
          'delivery on every channel after the kill',
          8000,
        );
        const afterKill = await clientId(admin, pair.bSubName);
        assert.ok(afterKill && afterKill !== before, 'a new connection carries the subscriptions');
        assert.equal(pair.b.ready, true);
      } finally {
        await pair.cleanup();
      }
    });

    it('subscribes in Redis as the routing says', async () => {
      const pair = await redisPair(fixture, routing);
      try {
        await startPair(pair);
        const admin = await fixture.client();
        const numsub = async (name: string): Promise<number> => Number(((await admin.pubsub('NUMSUB', name)) as [string, number])[1]);
        await pair.b.subscribe('group:ops');
        if (routing === 'interest') {
          assert.equal(await numsub(channelTag(pair.prefix, 'group:ops')), 1, 'one node has interest in group:ops');
          assert.equal(await numsub(broadcastName(pair.prefix)), 0);
          await pair.b.unsubscribe('group:ops');
          assert.equal(await numsub(channelTag(pair.prefix, 'group:ops')), 0, 'no interest left after unsubscribe');
        } else {
          assert.equal(await numsub(channelTag(pair.prefix, 'group:ops')), 0, 'no per-channel subscription');
          assert.equal(await numsub(broadcastName(pair.prefix)), 2, 'both nodes listen on the one broadcast channel');
        }
        await pair.b.close();
        assert.equal(await numsub(broadcastName(pair.prefix)), routing === 'broadcast' ? 1 : 0, 'close unsubscribes');
        assert.equal(pair.clients.bSub.status, 'ready', 'close does not quit the injected connection');
        assert.equal(pair.clients.bPub.status, 'ready', 'close does not quit the injected connection');
      } finally {
        await pair.cleanup();
      }
    });

    it('reports an undecodable payload and ignores other components on a shared subscriber connection', async () => {
      const errors: Error[] = [];
      const pair = await redisPair(fixture, routing, { onError: (err) => errors.push(err) });
      try {
        const got = await startPair(pair);
        await pair.b.subscribe('group:ops');
        // What a RedisRegistry sharing the connection would subscribe to.
        const foreign = `${pair.prefix}{cluster}:registry`;
        await pair.clients.bSub.subscribe(foreign);
        const admin = await fixture.client();
        await admin.publish(foreign, 'up|n1');
        const target = routing === 'interest' ? channelTag(pair.prefix, 'group:ops') : broadcastName(pair.prefix);
        await admin.publish(target, routing === 'interest' ? 'x|garbage' : '9:group:ops|garbage');
        await pair.a.publish('group:ops', publication('group:ops', 1));
        assert.deepEqual(await got.b.wait('group:ops', 1), [publication('group:ops', 1)]);
        assert.equal(got.b.all.length, 1);
        assert.equal(errors.length, 1, `one decode error, got ${errors.map((e) => e.message).join('; ')}`);
        assert.equal(errors[0]!.name, 'WireError');
      } finally {
        await pair.cleanup();
      }
    });

    if (routing === 'interest') {
      it('drops in Redis, once reconnected, a channel unsubscribed while the subscriber connection was down', async () => {
        const pair = await redisPair(fixture, routing);
        try {
          const got = await startPair(pair);
          await pair.b.subscribe('group:ops');
          await pair.b.subscribe('group:marker');
          const admin = await fixture.client();
          const unsubscribed = new Promise<unknown>((resolve) =>
            pair.clients.bSub.once('reconnecting', () => resolve(pair.b.unsubscribe('group:ops').then(() => 'resolved', (err: Error) => err.message))),
          );
          assert.equal(await admin.client('KILL', 'ID', (await clientId(admin, pair.bSubName))!), 1);
          assert.match(String(await unsubscribed), /writeable/, 'the unsubscribe could not reach Redis');
          const numsub = async (): Promise<number> => Number(((await admin.pubsub('NUMSUB', channelTag(pair.prefix, 'group:ops'))) as [string, number])[1]);
          await eventually(() => pair.b.ready, Boolean, 'b ready again');
          await eventually(numsub, (n) => n === 0, 'group:ops no longer subscribed in Redis');
          await eventually(
            async () => {
              await pair.a.publish('group:ops', publication('group:ops', 1));
              await pair.a.publish('group:marker', publication('group:marker', 1));
              return got.b.on('group:marker').length;
            },
            (n) => n > 0,
            'the marker channel delivered again',
          );
          assert.deepEqual(got.b.on('group:ops'), []);
        } finally {
          await pair.cleanup();
        }
      });
    }

    it('is not ready while a connection is down', async () => {
      const pair = await redisPair(fixture, routing);
      try {
        await startPair(pair);
        assert.equal(pair.b.ready, true);
        pair.clients.bSub.disconnect();
        await eventually(() => pair.b.ready, (ready) => !ready, 'b not ready with its subscriber connection down');
        assert.equal(pair.a.ready, true);
        pair.clients.aPub.disconnect();
        await eventually(() => pair.a.ready, (ready) => !ready, 'a not ready with its command connection down');
      } finally {
        await pair.cleanup();
      }
    });
  });
}

describe('RedisBroker with Redis unreachable', { skip: redisSkip }, () => {
  const fixture = new RedisFixture();
  after(() => fixture.cleanup());

  // Port 1 on loopback refuses connections: as if Redis were down.
  for (const [what, options] of [
    ['a fail-fast client (no offline queue)', { ...TEST_CLIENT_OPTIONS, port: 1 }],
    ['a client with the default offline queue', { port: 1, host: '127.0.0.1' }],
  ] as const) {
    it(`rejects a publish within 1 s with ${what}, and is not ready`, async () => {
      const pub = new Redis(options);
      pub.on('error', () => undefined);
      const sub = await fixture.client();
      try {
        const broker = new RedisBroker({ pub, sub, prefix: fixture.prefix });
        await broker.start(() => undefined);
        assert.equal(broker.ready, false);
        const t0 = Date.now();
        await assert.rejects(broker.publish('group:ops', publication('group:ops', 1)), /redis unavailable|Stream isn't writeable/);
        assert.ok(Date.now() - t0 < 1000, `rejected after ${Date.now() - t0} ms`);
        await broker.close();
      } finally {
        pub.disconnect();
      }
    });
  }
});
