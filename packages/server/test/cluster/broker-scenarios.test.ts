/**
 * The seeds' scenarios on every broker, against three real node processes (on Redis for history
 * and presence): a user on one node writes to a user on another; a department push reaches its
 * members on every node exactly once; broadcast; a node stopped with SIGSTOP receives everything
 * after SIGCONT, in order, without a gap; kill -9 of a node loses nothing confirmed for clients
 * that reconnect elsewhere; the broker killed mid-stream and restarted (a private RabbitMQ node
 * or nats-server of the test's own), where nothing confirmed is lost and nothing is confirmed
 * while it is away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { TestClient, api, token, type Frame } from '../helpers.js';
import { redisSkip } from '../redis-helpers.js';
import { natsSkip } from '../support/nats.js';
import { rabbitSkip } from '../support/rabbitmq.js';
import { eventually } from '../support/eventually.js';
import { PrivateServer } from '../support/servers.js';
import { Cluster, type NodeProcess } from './harness.js';
import { OpenClients } from './scenarios.js';

interface BrokerSetup {
  env: Record<string, string>;
  /** Takes the broker away from the nodes, and gives it back. */
  outage?: { down(): Promise<void>; up(): Promise<void> };
  cleanup(): Promise<void>;
}

const BROKERS: { name: string; skip: string | undefined; setup: () => Promise<BrokerSetup> }[] = [
  { name: 'redis', skip: redisSkip, setup: async () => ({ env: { SWITCHBOARD_BROKER: 'redis' }, cleanup: async () => undefined }) },
  {
    name: 'rabbitmq',
    skip: redisSkip ?? rabbitSkip,
    setup: async () => {
      // A private RabbitMQ node, so that the outage is a real restart: killed, then started again.
      const rabbit = await PrivateServer.rabbitmq();
      return {
        env: { SWITCHBOARD_BROKER: 'rabbitmq', AMQP_URL: `amqp://guest:guest@127.0.0.1:${rabbit.port}` },
        outage: { down: () => rabbit.stop(), up: () => rabbit.start() },
        cleanup: () => rabbit.dispose(),
      };
    },
  },
  {
    name: 'nats',
    skip: redisSkip ?? natsSkip,
    setup: async () => {
      const nats = await PrivateServer.nats();
      return {
        env: { SWITCHBOARD_BROKER: 'nats', NATS_URL: `nats://127.0.0.1:${nats.port}` },
        outage: { down: () => nats.stop(), up: () => nats.start() },
        cleanup: () => nats.stop(),
      };
    },
  },
];

const dataOf = (frames: Frame[]) => frames.map((m) => m.data as number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

for (const broker of BROKERS) {
  describe(`seeds' scenarios on three nodes, broker ${broker.name}`, { skip: broker.skip }, () => {
    let setup: BrokerSetup;
    let cluster: Cluster;
    let n1: NodeProcess, n2: NodeProcess, n3: NodeProcess;
    const clients = new OpenClients();
    const { connect } = clients;
    before(async () => {
      setup = await broker.setup();
      cluster = new Cluster({ ...setup.env, SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
      [n1, n2, n3] = await Promise.all([cluster.start('s1'), cluster.start('s2'), cluster.start('s3')]);
    });
    after(async () => {
      await clients.closeAll();
      await cluster?.stop();
      await setup?.cleanup();
    });

    it('a user on one node writes to a user on another: every message once, in order', async () => {
      const bob = await connect(n2, 'bob');
      const alice = await connect(n1, 'alice');
      for (let i = 1; i <= 30; i++) assert.equal((await alice.request({ type: 'send', to: 'bob', topic: 'chat', data: i })).ok, true);
      assert.deepEqual(dataOf(await bob.waitMessages(30, 'user:bob')), range(1, 30));
      assert.ok(bob.messages('user:bob').every((m) => m.from === 'alice'));
    });

    it('a department push reaches its members on every node exactly once; a broadcast reaches everyone', async () => {
      const members = [
        await connect(n1, 'd1', { groups: ['sales'] }),
        await connect(n2, 'd2', { groups: ['sales'] }),
        await connect(n3, 'd3', { groups: ['sales'] }),
      ];
      const other = await connect(n3, 'other', { groups: ['hr'] });
      for (let i = 1; i <= 10; i++)
        assert.equal((await api(n1, 'POST', '/v1/publish', { channel: 'group:sales', topic: 'push', data: i })).status, 200);
      assert.equal((await api(n2, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'all', data: 99 })).status, 200);
      for (const m of [...members, other]) assert.deepEqual(dataOf(await m.waitMessages(1, 'broadcast')), [99]);
      for (const m of members) assert.deepEqual(dataOf(await m.waitMessages(10, 'group:sales')), range(1, 10));
      // Once each: a second broadcast is the barrier behind which a duplicate would have arrived.
      await api(n2, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'all', data: 100 });
      for (const m of [...members, other]) await m.waitMessages(2, 'broadcast');
      for (const m of members) assert.equal(m.messages('group:sales').length, 10);
      assert.equal(other.messages('group:sales').length, 0);
    });

    it('a node stopped with SIGSTOP for 5 s gets everything after SIGCONT, in order, without a gap', async () => {
      const member = await connect(n3, 'sleepy', { groups: ['night'] });
      await api(n1, 'POST', '/v1/publish', { channel: 'group:night', topic: 't', data: 0 });
      await member.waitMessages(1, 'group:night');
      n3.child.kill('SIGSTOP');
      try {
        for (let i = 1; i <= 50; i++) {
          assert.equal((await api(n1, 'POST', '/v1/publish', { channel: 'group:night', topic: 't', data: i })).status, 200);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        n3.child.kill('SIGCONT');
      }
      const got = await member.waitMessages(51, 'group:night', 15_000);
      assert.deepEqual(dataOf(got), range(0, 50));
      assert.deepEqual(
        got.map((m) => m.offset),
        range(got[0]!.offset, got[0]!.offset + 50),
        'dense offsets: no gap',
      );
    });

    it('kill -9 of a node loses nothing confirmed for the clients that reconnect to another node', async () => {
      const victim = await cluster.start(`victim-${broker.name}`);
      const client = new TestClient(`${victim.wsUrl}?token=${await token('kim', { groups: ['feed'] })}`);
      clients.keep(client);
      await client.next((f) => f.type === 'welcome');
      const confirmed: number[] = [];
      let stop = false;
      const publishing = (async () => {
        for (let i = 1; !stop && i <= 400; i++) {
          const res = await api(n1, 'POST', '/v1/publish', { channel: 'group:feed', topic: 't', data: i });
          if (res.status === 200) confirmed.push(i);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await eventually(() => client.messages('group:feed').length >= 20, { timeoutMs: 10_000 });
      await victim.kill9();
      const seen = client.messages('group:feed');
      const last = seen.at(-1)!;
      await new Promise((r) => setTimeout(r, 300));
      const resume = encodeResume({ 'group:feed': { epoch: last.epoch as string, offset: last.offset as number } });
      const again = await connect(n2, 'kim', { groups: ['feed'] }, `&resume=${resume}`);
      assert.equal(again.frames[0]!.subscriptions['group:feed'].recovered, true);
      stop = true;
      await publishing;
      const all = [...seen, ...(await again.waitMessages(confirmed.length - seen.length, 'group:feed', 15_000))];
      assert.deepEqual(dataOf(all), confirmed, 'every confirmed message once, in order, across the two nodes');
    });

    if (broker.name !== 'redis') {
      it('the broker killed mid-stream and restarted: publishes fail fast (503, never a silent 200), nodes not ready, then everything confirmed arrives once, in order', async () => {
        const members = [await connect(n2, 'm2', { groups: ['live'] }), await connect(n3, 'm3', { groups: ['live'] })];
        const confirmed: number[] = [];
        const refused: number[] = [];
        let stop = false;
        const publishing = (async () => {
          for (let i = 1; !stop; i++) {
            const t0 = Date.now();
            const res = await api(n1, 'POST', '/v1/publish', { channel: 'group:live', topic: 't', data: i });
            if (res.status === 200) confirmed.push(i);
            else {
              assert.deepEqual([res.status, res.body.error.code], [503, 'unavailable']);
              assert.ok(Date.now() - t0 < 2000, `refused after ${Date.now() - t0} ms`);
              refused.push(i);
            }
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
        await eventually(() => members.every((m) => m.messages('group:live').length >= 10), { timeoutMs: 10_000 });
        await setup.outage!.down();
        await eventually(async () => (await fetch(`${n1.url}/readyz`)).status === 503, {
          timeoutMs: 10_000,
          message: 'n1 not ready while the broker is away',
        });
        await eventually(() => refused.length >= 5, { timeoutMs: 10_000, message: 'publishes refused while the broker is away' });
        await setup.outage!.up();
        await eventually(async () => (await fetch(`${n1.url}/readyz`)).status === 200, { timeoutMs: 30_000, message: 'n1 ready again' });
        const before = confirmed.length;
        await eventually(() => confirmed.length >= before + 10, { timeoutMs: 15_000, message: 'publishes confirmed again' });
        stop = true;
        await publishing;
        for (const m of members) {
          // A publication refused after its append (the broker went in between) is in history and
          // may still arrive, as its error said; every confirmed one must.
          const got = dataOf(
            await eventually(
              () => {
                const seen = m.messages('group:live');
                return confirmed.every((i) => seen.some((f) => f.data === i)) && seen;
              },
              { timeoutMs: 15_000, message: 'every confirmed publication' },
            ),
          );
          assert.deepEqual(
            got,
            [...new Set(got)].sort((a, b) => a - b),
            'once each, in order',
          );
          assert.ok(
            got.every((i) => confirmed.includes(i) || refused.includes(i)),
            'nothing that was not published',
          );
        }
      });
    }
  });
}
