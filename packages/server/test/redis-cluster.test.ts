/**
 * Redis Cluster (`SWITCHBOARD_REDIS_CLUSTER=on`) against a real private cluster of three masters
 * and three replicas (support/redis-cluster.ts): the History, PresenceStore, Registry, webhook
 * outbox and Broker contracts over cluster clients made as the engine makes them, the keys and
 * sharded pub/sub names a node uses, and two node processes on the cluster through a failover of
 * one master mid-stream.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { createBroker } from '../src/broker/create-broker.js';
import { RedisHistory } from '../src/history/redis-history.js';
import { RedisPresenceStore } from '../src/presence/redis-presence-store.js';
import { closeRedis, connectRedis, createRedisLinks, type RedisLinks } from '../src/redis/connect.js';
import { RedisRegistry } from '../src/registry/redis-registry.js';
import { RedisOutbox } from '../src/webhooks/redis-outbox.js';
import { Cluster } from './cluster/harness.js';
import { brokerContract } from './contracts/broker-contract.js';
import { historyContract } from './contracts/history-contract.js';
import { outboxContract } from './contracts/outbox-contract.js';
import { presenceContract } from './contracts/presence-contract.js';
import { registryContract } from './contracts/registry-contract.js';
import { TestClient, sleep } from './helpers.js';
import { redisSkip } from './redis-helpers.js';
import { RedisClusterServer } from './support/redis-cluster.js';

const run = promisify(execFile);
const log = pino({ level: 'silent' });

// One private cluster for the whole file, started by the first test that needs it.
let started: Promise<RedisClusterServer> | undefined;
const cluster = () => (started ??= RedisClusterServer.start());
after(async () => (await started)?.stop());

const opened: RedisLinks[] = [];
after(() => Promise.all(opened.splice(0).map((l) => closeRedis(l))));

/** Command and subscriber links to the cluster, made and connected as the engine does. */
async function links(name: string): Promise<RedisLinks> {
  const { url } = await cluster();
  const made = createRedisLinks({ url, name, log, autoPipelining: true, cluster: true });
  await connectRedis(made, url, 'the test cluster');
  opened.push(made);
  return made;
}

let prefixes = 0;
const freshPrefix = () => `sbc${++prefixes}:`;

describe('Redis Cluster', { skip: redisSkip }, () => {
  describe('History contract', () => {
    historyContract(async (limits, count) => {
      const prefix = freshPrefix();
      const histories = [];
      for (let i = 0; i < count; i++) histories.push(new RedisHistory({ redis: (await links(`h${i}`)).redis, prefix, ...limits }));
      return histories;
    });
  });

  describe('PresenceStore contract', () => {
    presenceContract(async (count) => {
      const prefix = freshPrefix();
      const stores = [];
      for (let i = 0; i < count; i++) stores.push(new RedisPresenceStore({ redis: (await links(`p${i}`)).redis, prefix }));
      return stores;
    });
  });

  describe('Registry contract', () => {
    registryContract(async () => {
      const prefix = freshPrefix();
      const registries: RedisRegistry[] = [];
      return {
        open: async () => {
          const { redis, sub } = await links('r');
          const registry = new RedisRegistry({ redis, sub, prefix });
          registries.push(registry);
          return registry;
        },
        cleanup: async () => void (await Promise.allSettled(registries.map((r) => r.close()))),
      };
    });
  });

  describe('Webhook outbox contract', () => {
    outboxContract(async (count) => {
      const prefix = freshPrefix();
      const out = [];
      for (let i = 0; i < count; i++) out.push(new RedisOutbox((await links(`o${i}`)).redis, prefix));
      return out;
    });
  });

  // The outage cases need the whole backend away; on a cluster the loss of one shard is what
  // happens, and the failover test below takes one away under two real nodes. No hash routing: a
  // node refuses it on a cluster (options.test.ts), its two names would live on two shards.
  describe('Broker contract (sharded pub/sub)', () => {
    brokerContract(
      async ({ routing, ring }) => {
        const redisPrefix = freshPrefix();
        const make = async (nodeId: string) => createBroker('redis', { nodeId, routing, ring, redis: await links(nodeId), redisPrefix });
        const a = await make('node-a');
        const b = await make('node-b');
        return { a, b, cleanup: async () => void (await Promise.allSettled([a.close(), b.close()])) };
      },
      { noOutage: true, routings: ['interest', 'broadcast'] },
    );
  });

  describe('two nodes on the cluster', () => {
    let nodes: Cluster;
    const clients: TestClient[] = [];
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await nodes?.stop();
    });

    it('keeps a channel on one shard, subscribes with SSUBSCRIBE there, and delivers across nodes', async () => {
      const server = await cluster();
      nodes = new Cluster({ SWITCHBOARD_REDIS_CLUSTER: 'on', REDIS_URL: server.url, SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
      const [n1, n2] = await Promise.all([nodes.start('rc1'), nodes.start('rc2')]);
      const alice = await TestClient.connect(n1!, 'alice', { groups: ['g'] });
      const bob = await TestClient.connect(n2!, 'bob', { groups: ['g'] });
      clients.push(alice, bob);
      const sent = await alice.request({ type: 'publish', channel: 'user:bob', topic: 'dm', data: 'hi bob' });
      assert.equal(sent.ok, true, JSON.stringify(sent));
      const got = await bob.next((f) => f.type === 'message' && f.data === 'hi bob');
      assert.equal(got.from, 'alice');

      // Every key of the channel lives on the master of its tag's slot, and so does its sharded name.
      const tag = `${nodes.prefix}{ch:user:bob}`;
      const port = await server.masterOf(tag);
      const keys = (await run('redis-cli', ['-p', String(port), '--scan', '--pattern', `${tag}*`])).stdout.trim().split('\n').sort();
      assert.deepEqual(keys, [`${tag}:meta`, `${tag}:s:bob`, `${tag}:stream`, `${tag}:u:bob`, `${tag}:users`].sort());
      const names = (await run('redis-cli', ['-p', String(port), 'pubsub', 'shardchannels', `${tag}`])).stdout.trim();
      assert.equal(names, tag, 'bob\u2019s node holds a sharded subscription on the shard of the channel');
      const plain = (await run('redis-cli', ['-p', String(port), 'pubsub', 'channels', `${nodes.prefix}{ch:*`])).stdout.trim();
      assert.equal(plain, '', 'no channel goes over classic (cluster-wide) pub/sub');
    });

    it('loses nothing acknowledged when the master of a channel fails over mid-stream', async () => {
      const server = await cluster();
      const [n1, n2] = nodes.nodes as [(typeof nodes.nodes)[0], (typeof nodes.nodes)[0]];
      const alice = clients[0]!;
      const bob = clients[1]!;
      const acked: number[] = [];
      let refused = 0;
      let stop = false;
      const publisher = (async () => {
        for (let i = 0; !stop; i++) {
          const reply = await alice.request({ type: 'publish', channel: 'group:g', topic: 't', data: `m${i}` });
          if (reply.ok) acked.push(reply.offset as number);
          else {
            assert.equal(reply.error?.code, 'unavailable', JSON.stringify(reply));
            refused++;
          }
          await sleep(20);
        }
      })();
      await sleep(1000);
      const before = acked.length;
      const killed = await server.failover(`${nodes.prefix}{ch:group:g}`);
      await sleep(2000);
      stop = true;
      await publisher;
      assert.ok(
        before > 10 && acked.length > before + 10,
        `published before (${before}) and after (${acked.length - before}) the failover`,
      );

      const last = acked[acked.length - 1]!;
      await bob.next((f) => f.type === 'message' && f.channel === 'group:g' && f.offset === last, 15_000);
      const seen = bob.messages('group:g').map((m) => m.offset as number);
      assert.deepEqual(
        seen.filter((o) => acked.includes(o)),
        acked,
        `every acknowledged offset once, in order (killed master ${killed}, ${refused} refused)`,
      );
      assert.equal(new Set(seen).size, seen.length, 'no offset twice');
      assert.equal(new Set(bob.messages('group:g').map((m) => m.epoch)).size, 1, 'the replica kept the epoch: no new one');
      for (const n of [n1, n2]) assert.equal((await fetch(`${n.url}/readyz`)).status, 200, `${n.id} ready after the failover`);
    });
  });
});
