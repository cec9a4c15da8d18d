/**
 * The inbox (PROTOCOL.md "Inbox, acknowledgements, receipts (v1.1)") over real sockets, on every
 * history store: memory, Redis (a key prefix of its own) and PostgreSQL (a database of its own).
 * Bob offline, alice writes; bob's next device gets what he has not acked, in order, once; acks are
 * cumulative and per user; receipts reach the sender once, also after being offline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { API_KEY, TestClient, api, sleep, startNode, type Frame, type TestNode } from './helpers.js';
import { historyStores } from './support/history-stores.js';

const STORES = historyStores('in');

/** A fresh pair of user ids per test, so tests on one node do not see each other's inboxes. */
function users(): { alice: string; bob: string } {
  const n = randomUUID().slice(0, 8);
  return { alice: `alice-${n}`, bob: `bob-${n}` };
}

const messages = (c: TestClient, channel: string) => c.frames.filter((f) => f.type === 'message' && f.channel === channel);

for (const store of STORES) {
  describe(`inbox on ${store.name}`, { skip: store.skip }, () => {
    let node: TestNode;
    const open: TestClient[] = [];
    const connect = async (user: string, query = ''): Promise<TestClient> => {
      const client = await TestClient.connect(node, user, {}, query);
      open.push(client);
      return client;
    };
    const welcomeOf = (c: TestClient) => c.frames.find((f) => f.type === 'welcome')!;

    before(async () => {
      await store.setUp?.();
      node = await startNode({ ...store.options(), inbox: 'on', historySize: 5, inboxSize: 50, maxRecoveryMessages: 4 });
    });
    after(async () => {
      await Promise.all(open.map((c) => c.close()));
      await node?.stop();
      await store.tearDown?.();
    });

    it('hands a device without a position everything after the ack, in order, once; a second device nothing acked', async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      // Bob is offline: more messages than the regular history keeps (5) and than one page (4).
      for (let i = 1; i <= 12; i++) assert.equal((await a.request({ type: 'send', to: bob, topic: 'chat', data: { i } })).ok, true);

      const phone = await connect(bob);
      const welcome = welcomeOf(phone);
      const state = welcome.subscriptions[`user:${bob}`];
      assert.equal(state.acked, 0, 'welcome carries acked');
      assert.equal(state.offset, 12);
      const got = await phone.waitMessages(12, `user:${bob}`);
      assert.deepEqual(
        got.map((m) => m.data.i),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
        'every unacked message, in order, once',
      );
      assert.ok(phone.frames.indexOf(welcome) < phone.frames.indexOf(got[0]!), 'after the welcome');

      const reply = await phone.request({ type: 'ack', channel: `user:${bob}`, epoch: state.epoch, offset: 9 });
      assert.deepEqual({ ok: reply.ok, acked: reply.acked, epoch: reply.epoch }, { ok: true, acked: 9, epoch: state.epoch });

      const laptop = await connect(bob);
      assert.equal(welcomeOf(laptop).subscriptions[`user:${bob}`].acked, 9);
      const rest = await laptop.waitMessages(3, `user:${bob}`);
      assert.deepEqual(
        rest.map((m) => m.data.i),
        [10, 11, 12],
      );
      // Live messages follow the catch-up on both devices.
      await a.request({ type: 'send', to: bob, topic: 'chat', data: { i: 13 } });
      await laptop.waitMessages(4, `user:${bob}`);
      await phone.waitMessages(13, `user:${bob}`);
      await sleep(100);
      assert.equal(messages(laptop, `user:${bob}`).length, 4, 'nothing twice');

      await laptop.request({ type: 'ack', channel: `user:${bob}`, epoch: state.epoch, offset: 13 });
      const tablet = await connect(bob);
      assert.equal(welcomeOf(tablet).subscriptions[`user:${bob}`].acked, 13);
      await sleep(150);
      assert.deepEqual(messages(tablet, `user:${bob}`), [], 'a device after the last ack gets nothing');
    });

    it('keeps acks cumulative and per user, and refuses what is not its own or not there', async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      for (let i = 1; i <= 3; i++) await a.request({ type: 'send', to: bob, topic: 'chat', data: { i } });
      const b = await connect(bob);
      const { epoch } = welcomeOf(b).subscriptions[`user:${bob}`];
      await b.waitMessages(3, `user:${bob}`);

      assert.equal((await b.request({ type: 'ack', channel: `user:${bob}`, epoch, offset: 2 })).acked, 2);
      const lower = await b.request({ type: 'ack', channel: `user:${bob}`, epoch, offset: 1 });
      assert.deepEqual({ ok: lower.ok, acked: lower.acked }, { ok: true, acked: 2 }, 'an ack below the stored one changes nothing');

      const past = await b.request({ type: 'ack', channel: `user:${bob}`, epoch, offset: 4 });
      assert.equal(past.ok, false);
      assert.equal(past.error.code, 'bad_frame');
      assert.match(past.error.message, /past the inbox's latest offset 3/);

      const otherEpoch = await b.request({ type: 'ack', channel: `user:${bob}`, epoch: 'not-the-epoch', offset: 1 });
      assert.equal(otherEpoch.error.code, 'bad_frame');
      assert.match(otherEpoch.error.message, /is not the inbox's epoch/);

      const aliceEpoch = welcomeOf(a).subscriptions[`user:${alice}`].epoch;
      const foreign = await b.request({ type: 'ack', channel: `user:${alice}`, epoch: aliceEpoch, offset: 0 });
      assert.equal(foreign.error.code, 'forbidden', "only alice may ack alice's inbox");
      const group = await b.request({ type: 'ack', channel: 'group:x', epoch, offset: 0 });
      assert.equal(group.error.code, 'forbidden');
      const bad = await b.request({ type: 'ack', channel: 'nope', epoch, offset: 0 });
      assert.equal(bad.error.code, 'bad_frame');

      const summary = await api(node, 'GET', `/v1/inbox/${bob}`);
      assert.equal(summary.status, 200);
      assert.deepEqual(summary.body, { user: bob, channel: `user:${bob}`, epoch, offset: 3, acked: 2, unacked: 1 });
      const mine = await b.request({ type: 'inbox' });
      assert.deepEqual(
        { epoch: mine.epoch, offset: mine.offset, acked: mine.acked, unacked: mine.unacked },
        { epoch, offset: 3, acked: 2, unacked: 1 },
        'the same over the socket',
      );
      assert.equal((await api(node, 'GET', '/v1/inbox/a:b')).status, 400);
      assert.equal((await api(node, 'GET', `/v1/inbox/${bob}`, undefined, null)).status, 401);
      // The session still serves after every refusal.
      assert.equal((await b.request({ type: 'ping' })).ok, true);
    });

    it("puts a receipt in the sender's inbox when the recipient acks: delivered once, also after being offline", async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      const sent = await a.request({ type: 'send', to: bob, topic: 'chat', data: { text: 'read me' }, receipt: true });
      const plain = await a.request({ type: 'send', to: bob, topic: 'chat', data: { text: 'no receipt' } });
      await a.close();

      const b = await connect(bob);
      const [first, second] = await b.waitMessages(2, `user:${bob}`);
      assert.equal(first!.receipt, true, 'the recipient sees that a receipt was asked for');
      assert.equal(second!.receipt, undefined);
      await b.request({ type: 'ack', channel: `user:${bob}`, epoch: plain.epoch, offset: plain.offset });
      // Acking again sends no second receipt.
      await b.request({ type: 'ack', channel: `user:${bob}`, epoch: plain.epoch, offset: plain.offset });

      const back = await connect(alice);
      const receipt = await back.next((f) => f.type === 'receipt');
      assert.deepEqual(
        { channel: receipt.channel, epoch: receipt.epoch, offset: receipt.offset, user: receipt.user },
        { channel: `user:${bob}`, epoch: sent.epoch, offset: sent.offset, user: bob },
      );
      assert.equal(typeof receipt.ts, 'number');
      assert.equal(receipt.inbox.channel, `user:${alice}`, "kept in the sender's own inbox");
      await sleep(150);
      assert.equal(back.frames.filter((f) => f.type === 'receipt').length, 1, 'once');

      // Alice acks the receipt like a message: her next device does not get it again.
      await back.request({ type: 'ack', channel: `user:${alice}`, epoch: receipt.inbox.epoch, offset: receipt.inbox.offset });
      const other = await connect(alice);
      await sleep(150);
      assert.deepEqual(
        other.frames.filter((f: Frame) => f.type === 'receipt' || f.type === 'message'),
        [],
      );
    });

    it('delivers a receipt live to a sender who is online', async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      const b = await connect(bob);
      const sent = await a.request({ type: 'send', to: bob, topic: 'chat', data: 1, receipt: true });
      await b.waitMessages(1, `user:${bob}`);
      await b.request({ type: 'ack', channel: `user:${bob}`, epoch: sent.epoch, offset: sent.offset });
      const receipt = await a.next((f) => f.type === 'receipt');
      assert.equal(receipt.offset, sent.offset);
    });

    it('refuses topics of the server from clients and from the HTTP API', async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      const forged = await a.request({
        type: 'send',
        to: bob,
        topic: '$receipt',
        data: { channel: `user:${alice}`, epoch: 'e', offset: 1 },
      });
      assert.equal(forged.error.code, 'bad_frame');
      const http = await api(node, 'POST', '/v1/publish', { channel: `user:${bob}`, topic: '$receipt', data: {} });
      assert.equal(http.status, 400);
      assert.match(http.body.error.message, /reserved for the server/);
    });

    it('resumes a position as before and still says acked', async () => {
      const { alice, bob } = users();
      const a = await connect(alice);
      const b = await connect(bob);
      const first = await a.request({ type: 'send', to: bob, topic: 'chat', data: 1 });
      await b.waitMessages(1, `user:${bob}`);
      await b.request({ type: 'ack', channel: `user:${bob}`, epoch: first.epoch, offset: 1 });
      await b.close();
      await a.request({ type: 'send', to: bob, topic: 'chat', data: 2 });
      const resume = Buffer.from(JSON.stringify({ [`user:${bob}`]: { epoch: first.epoch, offset: 1 } })).toString('base64url');
      const again = await connect(bob, `&resume=${resume}`);
      const state = welcomeOf(again).subscriptions[`user:${bob}`];
      assert.deepEqual({ recovered: state.recovered, acked: state.acked, offset: state.offset }, { recovered: true, acked: 1, offset: 2 });
      const got = await again.waitMessages(1, `user:${bob}`);
      assert.equal(got[0]!.data, 2);
    });
  });
}

describe('inbox off', () => {
  let node: TestNode;
  before(async () => (node = await startNode({})));
  after(() => node.stop());

  it('answers ack, inbox and receipt requests with bad_frame saying how to turn it on, and keeps serving', async () => {
    const c = await TestClient.connect(node, 'carol');
    const welcome = c.frames.find((f) => f.type === 'welcome')!;
    assert.equal(welcome.subscriptions['user:carol'].acked, undefined, 'no acked without the inbox');
    const ack = await c.request({ type: 'ack', channel: 'user:carol', epoch: welcome.subscriptions['user:carol'].epoch, offset: 0 });
    assert.equal(ack.error.code, 'bad_frame');
    assert.match(ack.error.message, /SWITCHBOARD_INBOX=on/);
    assert.match((await c.request({ type: 'inbox' })).error.message, /SWITCHBOARD_INBOX=on/);
    assert.match((await c.request({ type: 'send', to: 'dave', topic: 't', receipt: true })).error.message, /SWITCHBOARD_INBOX=on/);
    assert.equal((await c.request({ type: 'send', to: 'dave', topic: 't' })).ok, true);
    const http = await fetch(`${node.url}/v1/inbox/carol`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(http.status, 404);
    await c.close();
  });
});
