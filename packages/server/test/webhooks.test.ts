/**
 * Webhooks (PROTOCOL.md v1.1) from a real node to a real local HTTP server that checks every
 * signature: `user.online` / `user.offline` once per user however many sessions, `message.unacked`
 * for what stays unacked (and not for what was acked in time), retries with backoff under the
 * same id after a non-2xx or a timeout, and the secret never in a log line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signWebhook, verifyWebhook } from '../src/index.js';
import { TestClient, sleep, startNode, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';
import { WebhookReceiver } from './support/webhook-receiver.js';

const WEBHOOK_SECRET = 'webhook-secret-0123456789';

describe('webhook signatures', () => {
  it('verify with the secret, over the exact body, within the tolerance', () => {
    const body = '{"id":"1","type":"user.online","ts":1,"user":"bob"}';
    const header = signWebhook(WEBHOOK_SECRET, body);
    assert.match(header, /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.equal(verifyWebhook(WEBHOOK_SECRET, body, header), true);
    assert.equal(verifyWebhook(WEBHOOK_SECRET, body.replace('bob', 'eve'), header), false, 'another body');
    assert.equal(verifyWebhook('another-secret-0123456789', body, header), false, 'another secret');
    assert.equal(
      verifyWebhook(WEBHOOK_SECRET, body, signWebhook(WEBHOOK_SECRET, body, Math.floor(Date.now() / 1000) - 3600)),
      false,
      'too old',
    );
    assert.equal(verifyWebhook(WEBHOOK_SECRET, body, undefined), false);
    assert.equal(verifyWebhook(WEBHOOK_SECRET, body, 't=1,v1=zz'), false);
  });
});

describe('webhooks from a node', () => {
  const receiver = new WebhookReceiver(WEBHOOK_SECRET);
  let node: TestNode;
  const open: TestClient[] = [];
  const connect = async (user: string) => {
    const c = await TestClient.connect(node, user);
    open.push(c);
    return c;
  };

  before(async () => {
    const url = await receiver.start();
    node = await startNode({
      inbox: 'on',
      webhookUrl: url,
      webhookSecret: WEBHOOK_SECRET,
      unackedAfterMs: 300,
      webhookTimeoutMs: 300,
    });
  });
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
    await receiver.stop();
  });

  it('announces a user online at the first session and offline after the last, once each, signed', async () => {
    const tab1 = await connect('olga');
    const tab2 = await connect('olga');
    const online = await eventually(
      () => receiver.of('user.online').filter((r) => r.event.user === 'olga').length === 1 && receiver.of('user.online'),
    );
    const hook = online.find((r) => r.event.user === 'olga')!;
    assert.equal(hook.valid, true, 'the signature checks out');
    assert.deepEqual(Object.keys(hook.event).sort(), ['id', 'node', 'ts', 'type', 'user']);
    assert.equal(hook.event.node, 'n-test');
    await tab1.close();
    await sleep(300);
    assert.equal(receiver.of('user.offline').filter((r) => r.event.user === 'olga').length, 0, 'one tab of two closed: still online');
    await tab2.close();
    await eventually(() => receiver.of('user.offline').some((r) => r.event.user === 'olga'));
    await sleep(300);
    assert.equal(receiver.of('user.online').filter((r) => r.event.user === 'olga').length, 1);
    assert.equal(receiver.of('user.offline').filter((r) => r.event.user === 'olga').length, 1);
  });

  it('announces a message that stays unacked, and not one acked in time', async () => {
    const alice = await connect('alice');
    const pending = await alice.request({ type: 'send', to: 'bruno', topic: 'chat', data: 'are you there?' });
    const bruno = await connect('carla');
    const quick = await alice.request({ type: 'send', to: 'carla', topic: 'chat', data: 'hi' });
    await bruno.waitMessages(1, 'user:carla');
    await bruno.request({ type: 'ack', channel: 'user:carla', epoch: quick.epoch, offset: quick.offset });

    const [hook] = await eventually(() => {
      const got = receiver.of('message.unacked').filter((r) => r.event.user === 'bruno');
      return got.length > 0 && got;
    });
    assert.equal(hook!.valid, true);
    const { id, ts, ...rest } = hook!.event;
    assert.equal(typeof id, 'string');
    assert.equal(typeof ts, 'number');
    assert.deepEqual(rest, {
      type: 'message.unacked',
      user: 'bruno',
      channel: 'user:bruno',
      epoch: pending.epoch,
      offset: pending.offset,
      from: 'alice',
      topic: 'chat',
    });
    assert.ok(hook!.at - Date.now() < 5000);
    await sleep(500);
    assert.deepEqual(
      receiver.of('message.unacked').filter((r) => r.event.user === 'carla'),
      [],
      'acked before the deadline: no webhook',
    );
  });

  it('retries a failed delivery (a 500, then no answer) with backoff and the same id, until a 2xx', async () => {
    let attempts = 0;
    receiver.answer = (hook) => {
      if (hook.event.user !== 'retry-me') return 200;
      attempts++;
      return attempts === 1 ? 500 : attempts === 2 ? 'hang' : 200;
    };
    const c = await connect('retry-me');
    const hooks = await eventually(
      () => {
        const got = receiver.of('user.online').filter((r) => r.event.user === 'retry-me');
        return got.length >= 3 && got;
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(new Set(hooks.map((h) => h.event.id)).size, 1, 'the same id on every attempt');
    assert.ok(hooks.every((h) => h.valid));
    assert.ok(hooks[1]!.at - hooks[0]!.at >= 700, `a backoff between attempts (${hooks[1]!.at - hooks[0]!.at} ms)`);
    await sleep(1500);
    assert.equal(receiver.of('user.online').filter((r) => r.event.user === 'retry-me').length, 3, 'no attempt after the 2xx');
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert.match(metrics, /switchboard_webhook_events_total\{type="user.online",outcome="failed",node="n-test"\} 2/);
    assert.match(metrics, /switchboard_webhook_events_total\{type="message.unacked",outcome="skipped",node="n-test"\} [1-9]/);
    await c.close();
    receiver.answer = () => 200;
  });

  it('never logs the webhook secret', () => {
    assert.ok(
      node.logs.some((l) => l.includes('webhook delivery failed')),
      'failures are logged',
    );
    assert.deepEqual(
      node.logs.filter((l) => l.includes(WEBHOOK_SECRET)),
      [],
    );
  });
});
