/**
 * Webhooks from a cluster of real node processes (Redis for presence and broker, PostgreSQL for
 * history, inbox and the webhook queue, each of the test's own): every event is sent by one node,
 * not by each; and when the node delivering an event is killed with SIGKILL, another node sends it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, sleep } from '../helpers.js';
import { redisSkip } from '../redis-helpers.js';
import { eventually } from '../support/eventually.js';
import { PostgresDatabase, postgresSkip } from '../support/postgres.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { Cluster, type NodeProcess } from './harness.js';

const SECRET = 'cluster-webhook-secret-0123';

describe('webhooks from a cluster', { skip: redisSkip ?? postgresSkip }, () => {
  const db = new PostgresDatabase();
  const receiver = new WebhookReceiver(SECRET);
  let cluster: Cluster;
  let n1: NodeProcess;
  let n2: NodeProcess;
  const open: TestClient[] = [];
  const connect = async (node: NodeProcess, user: string) => {
    const c = await TestClient.connect(node, user);
    open.push(c);
    return c;
  };

  before(async () => {
    await db.create(false);
    const url = await receiver.start();
    cluster = new Cluster({
      SWITCHBOARD_HISTORY: 'postgres',
      DATABASE_URL: db.url,
      SWITCHBOARD_INBOX: 'on',
      SWITCHBOARD_WEBHOOK_URL: url,
      SWITCHBOARD_WEBHOOK_SECRET: SECRET,
      SWITCHBOARD_UNACKED_AFTER_MS: '300',
      SWITCHBOARD_WEBHOOK_TIMEOUT_MS: '500',
      SWITCHBOARD_PRESENCE_TTL_MS: '2000',
    });
    [n1, n2] = await Promise.all([cluster.start('hook-n1'), cluster.start('hook-n2')]);
  });
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await cluster?.stop();
    await receiver.stop();
    await db.drop();
  });

  const count = (type: string, user: string) => receiver.of(type).filter((r) => r.event.user === user).length;

  it('sends each event from one node: one online and one offline for sessions on two nodes, one unacked per message', async () => {
    const a = await connect(n1, 'bob');
    const b = await connect(n2, 'bob');
    await eventually(() => count('user.online', 'bob') === 1);
    await a.close();
    await b.close();
    await eventually(() => count('user.offline', 'bob') === 1);

    const alice = await connect(n1, 'alice');
    for (let i = 0; i < 5; i++) await alice.request({ type: 'send', to: 'dave', topic: 'chat', data: i });
    await eventually(() => count('message.unacked', 'dave') >= 5);
    await sleep(1000);
    assert.equal(count('user.online', 'bob'), 1);
    assert.equal(count('user.offline', 'bob'), 1);
    const unacked = receiver.of('message.unacked').filter((r) => r.event.user === 'dave');
    assert.deepEqual(
      unacked.map((r) => r.event.offset).sort((x, y) => x - y),
      [1, 2, 3, 4, 5],
      'one per message, not one per node',
    );
    assert.ok(
      receiver.received.every((r) => r.valid),
      'every request signed',
    );
  });

  it('hands an event to another node when the one delivering it dies', async () => {
    let first: string | undefined;
    receiver.answer = (hook) => {
      if (hook.event.user !== 'erin' || first !== undefined) return 200;
      first = hook.node;
      return 'hang'; // the node waits for an answer: kill it meanwhile
    };
    await connect(n1, 'erin');
    await eventually(() => first !== undefined);
    const holder = first === 'hook-n1' ? n1 : n2;
    const other = holder === n1 ? 'hook-n2' : 'hook-n1';
    await holder.kill9();
    const hooks = await eventually(
      () => {
        const got = receiver.of('user.online').filter((r) => r.event.user === 'erin');
        return got.length >= 2 && got;
      },
      { timeoutMs: 15_000 },
    );
    assert.equal(hooks[1]!.node, other, 'the surviving node sent it');
    assert.equal(hooks[1]!.event.id, hooks[0]!.event.id, 'the same event');
  });
});
