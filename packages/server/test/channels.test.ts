/**
 * Channel permissions and sender identity against a real node: who may publish and subscribe
 * where, that `from` always comes from the token (or the HTTP API), auto-subscriptions, fan-out to
 * every session, per-channel offset order and the subscription limit.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, api, startNode, type Frame, type TestNode } from './helpers.js';

/** Unique ids so tests sharing one node never see each other's channels. */
let seq = 0;
const uid = (prefix: string) => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 6)}`;

/** The `welcome` frame a client got on connect. */
const welcomeOf = (c: TestClient): Frame => c.frames.find((f) => f.type === 'welcome')!;

/** Opens clients on `node` and closes them all after each test, even a failing one. */
function clientPool(getNode: () => TestNode) {
  const open: TestClient[] = [];
  return {
    async connect(user: string, claims: Record<string, unknown> = {}): Promise<TestClient> {
      const client = await TestClient.connect(getNode(), user, claims);
      open.push(client);
      return client;
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((c) => c.close()));
    },
  };
}

/** Publishes over the HTTP API and asserts it was accepted. */
async function httpPublish(node: TestNode, body: Record<string, unknown>): Promise<Frame> {
  const res = await api(node, 'POST', '/v1/publish', body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/**
 * Publishes a marker to `user`'s channel over HTTP and waits for it. Delivery on one node is in
 * publish order, so anything published earlier that was going to reach `client` has reached it.
 */
async function settle(node: TestNode, client: TestClient, user: string): Promise<void> {
  const marker = uid('marker');
  await httpPublish(node, { channel: `user:${user}`, topic: 'marker', data: marker });
  await client.next((f) => f.type === 'message' && f.topic === 'marker' && f.data === marker);
}

describe('channels and permissions', () => {
  let node: TestNode;
  const pool = clientPool(() => node);
  before(async () => (node = await startNode()));
  afterEach(() => pool.closeAll());
  after(() => node.stop());

  describe('sender identity', () => {
    it('ignores a from field in a send frame: the recipient sees the token sub', async () => {
      const alice = uid('alice');
      const bob = uid('bob');
      const a = await pool.connect(alice);
      const b = await pool.connect(bob);
      const reply = await a.request({ type: 'send', to: bob, topic: 'chat', data: 'hi', from: 'mallory' });
      assert.equal(reply.ok, true);
      const msg = await b.next((f) => f.type === 'message' && f.topic === 'chat');
      assert.equal(msg.from, alice);
    });

    it('ignores a from field in a publish frame, including from null', async () => {
      const group = uid('team');
      const alice = uid('alice');
      const a = await pool.connect(alice, { groups: [group] });
      const b = await pool.connect(uid('bob'), { groups: [group] });
      assert.equal((await a.request({ type: 'publish', channel: `group:${group}`, topic: 'spoof', data: 1, from: 'mallory' })).ok, true);
      assert.equal((await a.request({ type: 'publish', channel: `group:${group}`, topic: 'spoof', data: 2, from: null })).ok, true);
      const got = await b.waitMessages(2, `group:${group}`);
      assert.deepEqual(
        got.map((m) => [m.data, m.from]),
        [
          [1, alice],
          [2, alice],
        ],
      );
    });

    it('sets from to the HTTP API stated sender, and to null without one', async () => {
      const user = uid('inbox');
      const c = await pool.connect(user);
      await httpPublish(node, { channel: `user:${user}`, topic: 'api', data: 1, from: 'system-bot' });
      await httpPublish(node, { channel: `user:${user}`, topic: 'api', data: 2 });
      await httpPublish(node, { channel: `user:${user}`, topic: 'api', data: 3, from: null });
      const got = await c.waitMessages(3, `user:${user}`);
      assert.deepEqual(
        got.map((m) => [m.data, m.from]),
        [
          [1, 'system-bot'],
          [2, null],
          [3, null],
        ],
      );
      assert.ok(
        got.every((m) => Object.hasOwn(m, 'from')),
        'from is present even when null',
      );
    });

    it('rejects an HTTP publish whose from is not a user id', async () => {
      const res = await api(node, 'POST', '/v1/publish', { channel: `user:${uid('x')}`, topic: 't', from: 'a b' });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'bad_frame');
    });
  });

  describe('group publish', () => {
    it('refuses a publish to a group the token does not grant, and nobody receives it', async () => {
      const group = uid('secret');
      const channel = `group:${group}`;
      const outsider = await pool.connect(uid('outsider'), { groups: [uid('other')] });
      const memberId = uid('member');
      const member = await pool.connect(memberId, { groups: [group] });

      const reply = await outsider.request({ type: 'publish', channel, topic: 'leak', data: 'x' });
      assert.deepEqual(reply.error, { code: 'forbidden', message: `not a member of ${channel}` });
      assert.equal(reply.ok, false);

      // The next accepted publication gets offset 1: the refused one never entered the channel.
      const next = await httpPublish(node, { channel, topic: 'real', data: 'y' });
      assert.equal(next.offset, 1);
      const msg = await member.next((f) => f.type === 'message' && f.channel === channel);
      assert.equal(msg.topic, 'real');
      await settle(node, member, memberId);
      assert.deepEqual(
        member.messages(channel).map((m) => m.topic),
        ['real'],
      );
      assert.equal(outsider.messages(channel).length, 0);
    });

    it('refuses a publish to a group listed only in the channels claim: subscribing is not membership', async () => {
      const group = uid('readonly');
      const channel = `group:${group}`;
      const reader = await pool.connect(uid('reader'), { channels: [channel] });
      assert.equal((await reader.request({ type: 'subscribe', channel })).ok, true);
      const reply = await reader.request({ type: 'publish', channel, topic: 't', data: 1 });
      assert.deepEqual(reply.error, { code: 'forbidden', message: `not a member of ${channel}` });
    });
  });

  describe('subscribe permissions', () => {
    it("refuses a subscribe to another user's channel", async () => {
      const bob = uid('bob');
      const eve = await pool.connect(uid('eve'));
      const reply = await eve.request({ type: 'subscribe', channel: `user:${bob}` });
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden');
      assert.equal(typeof reply.error.message, 'string');
      await httpPublish(node, { channel: `user:${bob}`, topic: 'private', data: 1 });
      const eveId = welcomeOf(eve).user as string;
      await settle(node, eve, eveId);
      assert.equal(eve.messages(`user:${bob}`).length, 0);
    });

    it("allows a subscribe to another user's channel listed in the channels claim", async () => {
      const bob = uid('bob');
      const carol = uid('carol');
      const support = await pool.connect(uid('support'), { channels: [`user:${bob}`] });
      const reply = await support.request({ type: 'subscribe', channel: `user:${bob}` });
      assert.equal(reply.ok, true);
      const c = await pool.connect(carol);
      await c.request({ type: 'send', to: bob, topic: 'chat', data: 'hello bob' });
      const msg = await support.next((f) => f.type === 'message' && f.channel === `user:${bob}`);
      assert.deepEqual({ from: msg.from, data: msg.data }, { from: carol, data: 'hello bob' });
    });

    it('refuses a subscribe to a group not in the token', async () => {
      const group = uid('closed');
      const c = await pool.connect(uid('nosy'), { groups: [uid('mine')], channels: [`group:${uid('listed')}`] });
      const reply = await c.request({ type: 'subscribe', channel: `group:${group}` });
      assert.deepEqual(reply.error, { code: 'forbidden', message: `not a member of group:${group}` });
    });

    it('refuses presence of a channel one may not subscribe to', async () => {
      const c = await pool.connect(uid('nosy'));
      const reply = await c.request({ type: 'presence', channel: `group:${uid('closed')}` });
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden');
    });
  });

  describe('automatic subscriptions', () => {
    it('subscribes the own user channel, broadcast and every token group on connect', async () => {
      const user = uid('auto');
      const g1 = uid('g');
      const g2 = uid('g');
      const c = await pool.connect(user, { groups: [g1, g2] });
      const subs = welcomeOf(c).subscriptions as Record<string, Frame>;
      assert.deepEqual(Object.keys(subs).sort(), ['broadcast', `group:${g1}`, `group:${g2}`, `user:${user}`].sort());
      for (const s of Object.values(subs)) {
        assert.equal(typeof s.epoch, 'string');
        assert.equal(typeof s.offset, 'number');
      }
    });

    it('delivers token groups without a subscribe frame', async () => {
      const group = uid('auto');
      const channel = `group:${group}`;
      const c = await pool.connect(uid('member'), { groups: [group] });
      const pub = await httpPublish(node, { channel, topic: 'hello', data: { n: 1 } });
      const msg = await c.next((f) => f.type === 'message' && f.channel === channel);
      assert.deepEqual(
        { topic: msg.topic, data: msg.data, offset: msg.offset, epoch: msg.epoch },
        { topic: 'hello', data: { n: 1 }, offset: pub.offset, epoch: pub.epoch },
      );
      assert.equal(c.frames.filter((f) => f.type === 'reply').length, 0, 'no subscribe was sent');
    });
  });

  describe('fan-out and order', () => {
    it('delivers a send to both sessions of a user with two connections', async () => {
      const bob = uid('bob');
      const b1 = await pool.connect(bob);
      const b2 = await pool.connect(bob);
      const a = await pool.connect(uid('alice'));
      const reply = await a.request({ type: 'send', to: bob, topic: 'chat', data: 'both' });
      for (const b of [b1, b2]) {
        const msg = await b.next((f) => f.type === 'message' && f.channel === `user:${bob}`);
        assert.deepEqual({ data: msg.data, offset: msg.offset }, { data: 'both', offset: reply.offset });
      }
      assert.notEqual(welcomeOf(b1).session, welcomeOf(b2).session);
    });

    it('delivers 50 concurrent HTTP publishes of a channel in offset order, offsets increasing by exactly 1', async () => {
      const group = uid('stream');
      const channel = `group:${group}`;
      const subscribers = [await pool.connect(uid('s'), { groups: [group] }), await pool.connect(uid('s'), { groups: [group] })];
      const start = (welcomeOf(subscribers[0]!).subscriptions as Record<string, Frame>)[channel]!.offset as number;
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => httpPublish(node, { channel, topic: 'tick', data: i })));
      assert.deepEqual(
        results.map((r) => r.offset as number).sort((x, y) => x - y),
        Array.from({ length: 50 }, (_, i) => start + i + 1),
        'the API hands out each offset once',
      );
      for (const s of subscribers) {
        const got = await s.waitMessages(50, channel);
        assert.equal(got.length, 50);
        got.forEach((m, i) => assert.equal(m.offset, start + i + 1, `message ${i} has offset ${m.offset}`));
        assert.ok(got.every((m) => m.epoch === results[0]!.epoch));
        // Each publication carries the data it was published with.
        const byOffset = new Map(results.map((r, i) => [r.offset as number, i]));
        assert.ok(got.every((m) => byOffset.get(m.offset as number) === m.data));
      }
    });
  });

  describe('broadcast', () => {
    it('refuses a broadcast publish without role admin, and nobody receives it', async () => {
      const pleb = await pool.connect(uid('pleb'), { role: 'user' });
      const watcherId = uid('watcher');
      const watcher = await pool.connect(watcherId);
      const reply = await pleb.request({ type: 'publish', channel: 'broadcast', topic: 'all', data: 1 });
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, 'forbidden');
      // The next accepted broadcast follows the position `welcome` reported: nothing slipped in.
      const before = (welcomeOf(watcher).subscriptions as Record<string, Frame>).broadcast!.offset as number;
      const next = await httpPublish(node, { channel: 'broadcast', topic: 'api-all', data: 2 });
      assert.equal(next.offset, before + 1);
      await watcher.next((f) => f.type === 'message' && f.channel === 'broadcast' && f.topic === 'api-all');
      await settle(node, watcher, watcherId);
      assert.deepEqual(
        watcher.messages('broadcast').map((m) => m.topic),
        ['api-all'],
      );
    });

    it('delivers an admin broadcast to every connected session', async () => {
      const adminId = uid('admin');
      const admin = await pool.connect(adminId, { role: 'admin' });
      const dup = uid('dup');
      const others = [
        await pool.connect(uid('u')),
        await pool.connect(uid('u'), { groups: [uid('g')] }),
        await pool.connect(dup),
        await pool.connect(dup),
      ];
      const reply = await admin.request({ type: 'publish', channel: 'broadcast', topic: 'maintenance', data: { in: 5 } });
      assert.equal(reply.ok, true);
      for (const c of [admin, ...others]) {
        const msg = await c.next((f) => f.type === 'message' && f.channel === 'broadcast');
        assert.deepEqual(
          { from: msg.from, topic: msg.topic, data: msg.data, offset: msg.offset, epoch: msg.epoch },
          { from: adminId, topic: 'maintenance', data: { in: 5 }, offset: reply.offset, epoch: reply.epoch },
        );
      }
    });
  });
});

describe('maxSubscriptions', () => {
  let node: TestNode;
  const pool = clientPool(() => node);
  before(async () => (node = await startNode({ maxSubscriptions: 4 })));
  afterEach(() => pool.closeAll());
  after(() => node.stop());

  it('refuses the subscribe past the limit with too_large, counting the automatic channels', async () => {
    const extra = [`group:${uid('a')}`, `group:${uid('b')}`, `group:${uid('c')}`, `user:${uid('d')}`];
    // user:<me> and broadcast already take 2 of the 4.
    const c = await pool.connect(uid('greedy'), { channels: extra });
    assert.equal((await c.request({ type: 'subscribe', channel: extra[0] })).ok, true);
    assert.equal((await c.request({ type: 'subscribe', channel: extra[1] })).ok, true);
    const over = await c.request({ type: 'subscribe', channel: extra[2] });
    assert.equal(over.ok, false);
    assert.equal(over.error.code, 'too_large');
    assert.equal(typeof over.error.message, 'string');

    // Re-subscribing a channel it already has does not count against the limit.
    assert.equal((await c.request({ type: 'subscribe', channel: extra[0] })).ok, true);

    // Nothing of the refused channel is delivered.
    await httpPublish(node, { channel: extra[2]!, topic: 't', data: 1 });
    await settle(node, c, welcomeOf(c).user as string);
    assert.equal(c.messages(extra[2]).length, 0);

    // Unsubscribing frees a slot.
    assert.equal((await c.request({ type: 'unsubscribe', channel: extra[1] })).ok, true);
    assert.equal((await c.request({ type: 'subscribe', channel: extra[3] })).ok, true);
    assert.equal((await c.request({ type: 'subscribe', channel: extra[2] })).error.code, 'too_large');
  });

  it('counts token groups as subscriptions', async () => {
    const groups = [uid('g'), uid('g')];
    const channel = `group:${uid('extra')}`;
    const c = await pool.connect(uid('member'), { groups, channels: [channel] });
    assert.equal(Object.keys(welcomeOf(c).subscriptions as object).length, 4);
    const reply = await c.request({ type: 'subscribe', channel });
    assert.equal(reply.error.code, 'too_large');
  });
});
