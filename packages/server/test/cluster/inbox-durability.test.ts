/**
 * The durable inbox across a cluster of real `switchboard node` processes with history in
 * PostgreSQL (a database of the test's own) and Redis for presence, registry and broker (a key
 * prefix of its own): parallel appends from two processes get dense offsets; bob's unacked
 * messages outlive every node killed with SIGKILL and a Redis flushed of the cluster's keys, and
 * reach his next device in order, once; receipts cross nodes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { API_KEY, TestClient, sleep, type TestNode } from '../helpers.js';
import { connectRedis, deletePrefix, redisSkip } from '../redis-helpers.js';
import { PostgresDatabase, postgresSkip } from '../support/postgres.js';
import { Cluster, type NodeProcess } from './harness.js';

const skip = redisSkip ?? postgresSkip;

async function publish(node: TestNode, body: Record<string, unknown>): Promise<{ epoch: string; offset: number }> {
  const res = await fetch(`${node.url}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { epoch: string; offset: number };
}

describe('durable inbox on PostgreSQL across node processes', { skip }, () => {
  const db = new PostgresDatabase();
  let cluster: Cluster;
  let n1: NodeProcess;
  let n2: NodeProcess;
  const open: TestClient[] = [];
  const connect = async (node: TestNode, user: string): Promise<TestClient> => {
    const c = await TestClient.connect(node, user);
    open.push(c);
    return c;
  };

  before(async () => {
    await db.create(false); // the nodes apply the schema themselves at start-up
    cluster = new Cluster({
      SWITCHBOARD_HISTORY: 'postgres',
      DATABASE_URL: db.url,
      SWITCHBOARD_INBOX: 'on',
      // The regular history keeps 5 messages for 1 s: the inbox keeps far more, far longer.
      SWITCHBOARD_HISTORY_SIZE: '5',
      SWITCHBOARD_HISTORY_TTL_MS: '1000',
      SWITCHBOARD_PRESENCE_TTL_MS: '2000',
    });
    [n1, n2] = await Promise.all([cluster.start('inbox-n1'), cluster.start('inbox-n2')]);
  });
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await cluster?.stop();
    await db.drop();
  });

  it('gives parallel appends from two processes dense offsets in one epoch', async () => {
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, i) => publish(i % 2 ? n1 : n2, { channel: 'group:dense', topic: 't', data: { i } })),
    );
    assert.equal(new Set(all.map((p) => p.epoch)).size, 1);
    assert.deepEqual(
      all.map((p) => p.offset).sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
  });

  it('keeps what bob has not acked through SIGKILL of every node and a flushed Redis; his next device gets it in order, once', async () => {
    const alice = await connect(n1, 'alice');
    for (let i = 1; i <= 30; i++) {
      const reply = await alice.request({ type: 'send', to: 'bob', topic: 'chat', data: { i } });
      assert.equal(reply.ok, true);
    }
    await sleep(1200); // older than the regular history keeps

    await Promise.all([n1.kill9(), n2.kill9()]);
    const redis = await connectRedis();
    await deletePrefix(redis, cluster.prefix);
    redis.disconnect();
    cluster.nodes.length = 0;
    [n1, n2] = await Promise.all([cluster.start('inbox-n1'), cluster.start('inbox-n2')]);

    const phone = await connect(n2, 'bob');
    const welcome = phone.frames.find((f) => f.type === 'welcome')!;
    assert.equal(welcome.subscriptions['user:bob'].acked, 0);
    const got = await phone.waitMessages(30, 'user:bob');
    assert.deepEqual(
      got.map((m) => m.data.i),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    await sleep(200);
    assert.equal(phone.messages('user:bob').length, 30, 'once');

    const ack = await phone.request({ type: 'ack', channel: 'user:bob', epoch: got[29]!.epoch, offset: got[29]!.offset });
    assert.equal(ack.acked, 30);
    const laptop = await connect(n1, 'bob');
    await sleep(300);
    assert.deepEqual(laptop.messages('user:bob'), [], 'his second device gets nothing after his ack');
  });

  it('sends a receipt across nodes to the sender', async () => {
    const carol = await connect(n1, 'carol');
    const dave = await connect(n2, 'dave');
    const sent = await carol.request({ type: 'send', to: 'dave', topic: 'chat', data: 'hi', receipt: true });
    const [message] = await dave.waitMessages(1, 'user:dave');
    await dave.request({ type: 'ack', channel: 'user:dave', epoch: message!.epoch, offset: message!.offset });
    const receipt = await carol.next((f) => f.type === 'receipt', 5000);
    assert.deepEqual(
      { user: receipt.user, offset: receipt.offset, epoch: receipt.epoch },
      { user: 'dave', offset: sent.offset, epoch: sent.epoch },
    );
  });
});
