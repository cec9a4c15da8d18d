/**
 * Every client frame type of PROTOCOL.md against a real node: what it does and the exact reply it
 * gets, malformed frames (`bad_frame`) leaving the session usable, the one-reply-per-id rule and
 * `?batch=1` framing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, api, sleep, startNode, type Frame, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

/** Unique ids so tests sharing one node never see each other's channels. */
let seq = 0;
const uid = (prefix: string) => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 6)}`;

describe('client frames', () => {
  let node: TestNode;
  const clients: TestClient[] = [];

  /** Connects and remembers the client so after() closes it even when a test fails. */
  async function connect(user: string, claims: Record<string, unknown> = {}, query = ''): Promise<TestClient> {
    const client = await TestClient.connect(node, user, claims, query);
    clients.push(client);
    return client;
  }

  /**
   * Publishes a marker to `user`'s channel over HTTP and waits for it. Delivery on one node is in
   * publish order, so anything published before the marker that was going to arrive has arrived.
   */
  async function settle(client: TestClient, user: string): Promise<void> {
    const marker = uid('marker');
    const res = await api(node, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 'marker', data: marker });
    assert.equal(res.status, 200);
    await client.next((f) => f.type === 'message' && f.topic === 'marker' && f.data === marker);
  }

  /** A well-formed request right after a bad frame must still succeed. */
  async function assertUsable(client: TestClient): Promise<void> {
    const reply = await client.request({ type: 'ping' });
    assert.equal(reply.ok, true, `session unusable: ${JSON.stringify(reply)}`);
  }

  before(async () => (node = await startNode()));
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node.stop();
  });

  describe('send', () => {
    it('replies ok with epoch and offset, and every session of the recipient gets the message', async () => {
      const alice = uid('alice');
      const bob = uid('bob');
      const a = await connect(alice);
      const b1 = await connect(bob);
      const b2 = await connect(bob);
      const before = Date.now();
      const reply = await a.request({ type: 'send', to: bob, topic: 'chat', data: { text: 'hi' } });
      assert.equal(reply.ok, true);
      assert.equal(typeof reply.epoch, 'string');
      assert.equal(reply.offset, 1, 'first publication on a fresh user channel has offset 1');
      for (const b of [b1, b2]) {
        const msg = await b.next((f) => f.type === 'message' && f.channel === `user:${bob}`);
        assert.deepEqual(
          { channel: msg.channel, from: msg.from, topic: msg.topic, data: msg.data, epoch: msg.epoch, offset: msg.offset },
          { channel: `user:${bob}`, from: alice, topic: 'chat', data: { text: 'hi' }, epoch: reply.epoch, offset: reply.offset },
        );
        assert.equal(typeof msg.ts, 'number');
        assert.ok(msg.ts >= before - 5000 && msg.ts <= Date.now() + 5000, `ts ${msg.ts} is not a current timestamp`);
      }
      assert.equal(a.messages(`user:${bob}`).length, 0, 'the sender is not subscribed to the recipient channel');
    });

    it('delivers a send without data with data null', async () => {
      const alice = uid('alice');
      const bob = uid('bob');
      const a = await connect(alice);
      const b = await connect(bob);
      const reply = await a.request({ type: 'send', to: bob, topic: 'nudge' });
      assert.equal(reply.ok, true, JSON.stringify(reply));
      const msg = await b.next((f) => f.type === 'message' && f.topic === 'nudge');
      assert.equal(msg.data, null);
    });
  });

  describe('publish', () => {
    it('publishes to a group the token grants: every member, the publisher included, gets it', async () => {
      const group = uid('team');
      const alice = uid('alice');
      const a = await connect(alice, { groups: [group] });
      const b = await connect(uid('bob'), { groups: [group] });
      const reply = await a.request({ type: 'publish', channel: `group:${group}`, topic: 'alert', data: { level: 2 } });
      assert.equal(reply.ok, true);
      assert.equal(typeof reply.epoch, 'string');
      assert.equal(reply.offset, 1);
      for (const c of [a, b]) {
        const msg = await c.next((f) => f.type === 'message' && f.channel === `group:${group}`);
        assert.deepEqual(
          { from: msg.from, topic: msg.topic, data: msg.data, epoch: msg.epoch, offset: msg.offset },
          { from: alice, topic: 'alert', data: { level: 2 }, epoch: reply.epoch, offset: 1 },
        );
      }
    });
  });

  describe('subscribe and unsubscribe', () => {
    it('replies ok with the channel position and then delivers the channel', async () => {
      const group = uid('news');
      const channel = `group:${group}`;
      let published: Frame | undefined;
      for (let i = 0; i < 3; i++) {
        const res = await api(node, 'POST', '/v1/publish', { channel, topic: 'old', data: i });
        assert.equal(res.status, 200);
        published = res.body;
      }
      const user = uid('reader');
      const c = await connect(user, { channels: [channel] });
      const reply = await c.request({ type: 'subscribe', channel });
      assert.equal(reply.ok, true);
      assert.equal(reply.epoch, published!.epoch);
      assert.equal(reply.offset, 3, 'the reply gives the latest offset of the channel');
      assert.equal(c.messages(channel).length, 0, 'a subscribe without since replays nothing');

      const res = await api(node, 'POST', '/v1/publish', { channel, topic: 'fresh', data: 'x' });
      assert.equal(res.status, 200);
      const msg = await c.next((f) => f.type === 'message' && f.channel === channel);
      assert.deepEqual(
        { topic: msg.topic, data: msg.data, offset: msg.offset, epoch: msg.epoch },
        { topic: 'fresh', data: 'x', offset: 4, epoch: reply.epoch },
      );
    });

    it('answers a second subscribe ok without delivering messages twice', async () => {
      const channel = `group:${uid('news')}`;
      const user = uid('reader');
      const c = await connect(user, { channels: [channel] });
      const first = await c.request({ type: 'subscribe', channel });
      const second = await c.request({ type: 'subscribe', channel });
      assert.equal(first.ok, true);
      assert.equal(second.ok, true);
      assert.equal(second.epoch, first.epoch);
      assert.equal(second.offset, first.offset);

      assert.equal((await api(node, 'POST', '/v1/publish', { channel, topic: 'once', data: 1 })).status, 200);
      await settle(c, user);
      const got = c.messages(channel);
      assert.equal(got.length, 1, `expected one delivery, got ${JSON.stringify(got)}`);
    });

    it('answers a subscribe to an auto-subscribed channel ok with its position', async () => {
      const user = uid('self');
      const c = await connect(user);
      const welcome = c.frames.find((f) => f.type === 'welcome')!;
      const reply = await c.request({ type: 'subscribe', channel: `user:${user}` });
      assert.equal(reply.ok, true);
      assert.deepEqual({ epoch: reply.epoch, offset: reply.offset }, welcome.subscriptions[`user:${user}`]);
    });

    it('unsubscribe replies ok and stops the channel; a second unsubscribe is not_found', async () => {
      const group = uid('ops');
      const channel = `group:${group}`;
      const user = uid('leaver');
      const c = await connect(user, { groups: [group] });
      const witness = await connect(uid('stayer'), { groups: [group] });

      const reply = await c.request({ type: 'unsubscribe', channel });
      assert.equal(reply.ok, true);

      assert.equal((await api(node, 'POST', '/v1/publish', { channel, topic: 'after', data: 1 })).status, 200);
      await witness.next((f) => f.type === 'message' && f.channel === channel && f.topic === 'after');
      await settle(c, user);
      assert.equal(c.messages(channel).length, 0, 'no message of an unsubscribed channel');

      const again = await c.request({ type: 'unsubscribe', channel });
      assert.equal(again.ok, false);
      assert.equal(again.error.code, 'not_found');
      const never = await c.request({ type: 'unsubscribe', channel: `group:${uid('never')}` });
      assert.equal(never.ok, false);
      assert.equal(never.error.code, 'not_found');
    });
  });

  describe('presence', () => {
    it('replies with the users of a channel, their session count and nodes', async () => {
      const group = uid('room');
      const channel = `group:${group}`;
      const carol = uid('carol');
      const dave = uid('dave');
      const c1 = await connect(carol, { groups: [group] });
      await connect(carol, { groups: [group] });
      await connect(dave, { groups: [group] });

      const expected = [
        { user: carol, sessions: 2, nodes: ['n-test'] },
        { user: dave, sessions: 1, nodes: ['n-test'] },
      ].sort((x, y) => x.user.localeCompare(y.user));
      // Presence is recorded just after `welcome`; poll until all three sessions are in.
      await eventually(
        async () => {
          const reply = await c1.request({ type: 'presence', channel });
          const users = [...((reply.users as Frame[] | undefined) ?? [])].sort((x, y) => String(x.user).localeCompare(String(y.user)));
          assert.equal(reply.ok, true);
          assert.equal(reply.channel, channel);
          assert.deepEqual(users, expected);
        },
        { intervalMs: 50, message: 'the presence reply to list all three sessions' },
      );
    });
  });

  describe('ping', () => {
    it('answers a JSON ping with a JSON pong', async () => {
      const c = await connect(uid('pinger'));
      c.send({ type: 'ping' });
      const pong = await c.next((f) => f.type === 'pong');
      assert.deepEqual(pong, { type: 'pong' });
      await sleep(100);
      assert.equal(c.frames.filter((f) => f.type === 'reply').length, 0, 'a ping without id gets no reply');
    });

    it('answers a JSON ping with an id with a pong and one ok reply', async () => {
      const c = await connect(uid('pinger'));
      const reply = await c.request({ type: 'ping', id: 'p1' });
      assert.deepEqual(reply, { type: 'reply', id: 'p1', ok: true });
      await c.next((f) => f.type === 'pong' && f.bare === undefined);
    });

    it('answers the bare text frame ping with the bare text frame pong', async () => {
      const c = await connect(uid('pinger'));
      c.send('ping');
      await c.next((f) => f.type === 'pong' && f.bare === true);
      assert.ok(c.raw.includes('pong'), `raw frames: ${JSON.stringify(c.raw)}`);
      assert.ok(!c.raw.some((r) => r.includes('"type":"pong"')), 'bare ping must not get a JSON pong');
    });
  });

  describe('replies and errors', () => {
    it('answers a failing frame without id with an error frame, not a reply', async () => {
      const user = uid('noid');
      const c = await connect(user);
      c.send({ type: 'publish', channel: `group:${uid('foreign')}`, topic: 't', data: 1 });
      const err = await c.next((f) => f.type === 'error');
      assert.equal(err.error.code, 'forbidden');
      c.send({ type: 'bogus' });
      const bad = await c.next((f) => f.type === 'error');
      assert.equal(bad.error.code, 'bad_frame');
      await settle(c, user);
      assert.equal(c.frames.filter((f) => f.type === 'reply').length, 0);
    });

    it('sends nothing back for a successful frame without id', async () => {
      const alice = uid('alice');
      const bob = uid('bob');
      const a = await connect(alice);
      const b = await connect(bob);
      a.send({ type: 'send', to: bob, topic: 'quiet', data: 1 });
      await b.next((f) => f.type === 'message' && f.topic === 'quiet');
      await settle(a, alice);
      assert.deepEqual(
        a.frames.filter((f) => f.type !== 'welcome' && f.type !== 'message'),
        [],
        'a successful frame without id gets neither reply nor error',
      );
    });

    it('gives every frame with an id exactly one reply', async () => {
      const user = uid('many');
      const group = uid('g');
      const c = await connect(user, { groups: [group] });
      const frames: Record<string, unknown>[] = [
        { type: 'send', to: uid('peer'), topic: 't', data: 1, id: 1 },
        { type: 'publish', channel: `group:${group}`, topic: 't', data: 1, id: 2 },
        { type: 'publish', channel: `group:${uid('foreign')}`, topic: 't', data: 1, id: 3 },
        { type: 'subscribe', channel: `group:${group}`, id: 4 },
        { type: 'subscribe', channel: `group:${uid('foreign')}`, id: 5 },
        { type: 'unsubscribe', channel: `group:${uid('absent')}`, id: 6 },
        { type: 'presence', channel: `group:${group}`, id: 7 },
        { type: 'ping', id: 8 },
        { type: 'nope', id: 9 },
        { type: 'send', topic: 't', id: 10 },
        { type: 'publish', channel: 'room:x', topic: 't', id: 'eleven' },
        { type: 'unsubscribe', channel: `group:${group}`, id: 12 },
      ];
      for (const f of frames) c.send(f);
      for (const f of frames) await c.next((r) => r.type === 'reply' && r.id === f.id);
      await settle(c, user);
      await sleep(200);
      const replies = c.frames.filter((f) => f.type === 'reply');
      for (const f of frames) {
        const mine = replies.filter((r) => r.id === f.id);
        assert.equal(mine.length, 1, `id ${String(f.id)} got ${mine.length} replies: ${JSON.stringify(mine)}`);
      }
      assert.equal(replies.length, frames.length, `unexpected replies: ${JSON.stringify(replies)}`);
      assert.equal(c.frames.filter((f) => f.type === 'error').length, 0, 'frames with ids get replies, never error frames');
      const ok = Object.fromEntries(replies.map((r) => [String(r.id), r.ok === true ? 'ok' : r.error.code]));
      assert.deepEqual(ok, {
        1: 'ok',
        2: 'ok',
        3: 'forbidden',
        4: 'ok',
        5: 'forbidden',
        6: 'not_found',
        7: 'ok',
        8: 'ok',
        9: 'bad_frame',
        10: 'bad_frame',
        eleven: 'bad_frame',
        12: 'ok',
      });
    });
  });

  describe('bad_frame', () => {
    const withoutId: [string, string | Buffer][] = [
      ['invalid JSON', '{"type":"ping"'],
      ['a JSON array', '[{"type":"ping"}]'],
      ['a JSON number', '42'],
      ['a JSON string', '"ping"'],
      ['JSON null', 'null'],
      ['an object without type', '{"to":"bob"}'],
      ['a binary frame', Buffer.from(JSON.stringify({ type: 'ping' }))],
    ];
    for (const [name, payload] of withoutId) {
      it(`answers ${name} with an error frame bad_frame and stays usable`, async () => {
        const c = await connect(uid('bad'));
        c.send(payload);
        const err = await c.next((f) => f.type === 'error');
        assert.equal(err.error.code, 'bad_frame');
        assert.equal(typeof err.error.message, 'string');
        assert.ok(err.error.message.length > 0);
        await assertUsable(c);
        assert.equal(c.closeCode, undefined);
      });
    }

    const withId: [string, Record<string, unknown>][] = [
      ['an unknown type', { type: 'shout', topic: 't' }],
      ['a non-string type', { type: 7 }],
      ['send without to', { type: 'send', topic: 't', data: 1 }],
      ['send without topic', { type: 'send', to: 'bob', data: 1 }],
      ['publish without channel', { type: 'publish', topic: 't', data: 1 }],
      ['publish without topic', { type: 'publish', channel: 'broadcast', data: 1 }],
      ['subscribe without channel', { type: 'subscribe' }],
      ['unsubscribe without channel', { type: 'unsubscribe' }],
      ['presence without channel', { type: 'presence' }],
      ['a numeric to', { type: 'send', to: 5, topic: 't' }],
      ['a numeric topic', { type: 'send', to: 'bob', topic: 7 }],
      ['an empty topic', { type: 'send', to: 'bob', topic: '' }],
      ['an object channel', { type: 'subscribe', channel: { name: 'broadcast' } }],
      ['a string since', { type: 'subscribe', channel: 'broadcast', since: 'e1:4' }],
      ['a negative since offset', { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e', offset: -1 } }],
      ['a to with a space', { type: 'send', to: 'a b', topic: 't' }],
      ['a to with a colon', { type: 'send', to: 'user:bob', topic: 't' }],
      ['publish to room:x', { type: 'publish', channel: 'room:x', topic: 't' }],
      ['publish to group: (empty id)', { type: 'publish', channel: 'group:', topic: 't' }],
      ['publish to user:a b', { type: 'publish', channel: 'user:a b', topic: 't' }],
      ['subscribe to room:x', { type: 'subscribe', channel: 'room:x' }],
      ['subscribe to group:', { type: 'subscribe', channel: 'group:' }],
      ['subscribe to user:a b', { type: 'subscribe', channel: 'user:a b' }],
      ['presence on room:x', { type: 'presence', channel: 'room:x' }],
    ];
    it('answers each malformed frame with an id with one reply bad_frame and stays usable', async () => {
      const c = await connect(uid('bad'));
      for (const [name, frame] of withId) {
        const reply = await c.request({ ...frame, id: name });
        assert.equal(reply.ok, false, `${name}: ${JSON.stringify(reply)}`);
        assert.equal(reply.error.code, 'bad_frame', `${name}: ${JSON.stringify(reply)}`);
        assert.equal(typeof reply.error.message, 'string');
        await assertUsable(c);
      }
      assert.equal(c.frames.filter((f) => f.type === 'error').length, 0);
      assert.equal(c.closeCode, undefined);
    });

    it('answers the same malformed frames without an id with error frames', async () => {
      const c = await connect(uid('bad'));
      for (const [name, frame] of withId) {
        c.send(frame);
        const err = await c.next((f) => f.type === 'error');
        assert.equal(err.error.code, 'bad_frame', `${name}: ${JSON.stringify(err)}`);
      }
      await assertUsable(c);
    });

    it('does not publish anything for a malformed publish', async () => {
      const group = uid('g');
      const user = uid('member');
      const c = await connect(user, { groups: [group] });
      const reply = await c.request({ type: 'publish', channel: `group:${group}`, topic: 42, data: 'x' });
      assert.equal(reply.error.code, 'bad_frame');
      const ok = await c.request({ type: 'publish', channel: `group:${group}`, topic: 'good', data: 'y' });
      assert.equal(ok.offset, 1, 'the malformed publish must not have taken an offset');
    });
  });

  describe('?batch=1', () => {
    it('packs messages of one tick into one frame of newline-separated objects, in offset order', async () => {
      const user = uid('batched');
      const channel = `user:${user}`;
      const c = await connect(user, {}, '&batch=1');
      // Warm the HTTP client's keep-alive pool so a burst is not spread out by 20 TCP handshakes.
      await Promise.all(
        Array.from({ length: 20 }, () => api(node, 'POST', '/v1/publish', { channel: `user:${uid('warm')}`, topic: 'warm' })),
      );
      // Whether 20 concurrent requests land in one tick depends on the scheduler; a few rounds
      // make that near-certain, and a server that never batches still fails every round.
      const rounds = 5;
      let round = 0;
      while (round < rounds) {
        round++;
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => api(node, 'POST', '/v1/publish', { channel, topic: 'burst', data: i })),
        );
        assert.deepEqual(
          results.map((r) => r.status),
          Array(20).fill(200),
        );
        await c.waitMessages(20 * round, channel);
        if (c.raw.some((r) => r.split('\n').length > 1)) break;
      }
      assert.ok(
        c.raw.some((r) => r.split('\n').length > 1),
        `expected at least one frame with several objects in ${rounds} bursts, objects per frame: ${JSON.stringify(c.raw.map((r) => r.split('\n').length))}`,
      );
      const got = c.messages(channel);
      assert.deepEqual(
        got.map((m) => m.offset),
        Array.from({ length: 20 * round }, (_, i) => i + 1),
      );
      assert.ok(got.every((m) => m.topic === 'burst'));
      for (const raw of c.raw) {
        for (const line of raw.split('\n')) {
          const obj = JSON.parse(line) as unknown;
          assert.ok(typeof obj === 'object' && obj !== null && !Array.isArray(obj), `each line is one JSON object: ${line}`);
        }
      }
    });

    it('packs a burst of replies and messages, keeping each reply once', async () => {
      const user = uid('batched');
      const c = await connect(user, {}, '&batch=1');
      for (let i = 1; i <= 10; i++) c.send({ type: 'send', to: user, topic: 'self', data: i, id: i });
      for (let i = 1; i <= 10; i++) await c.next((f) => f.type === 'reply' && f.id === i);
      const got = await c.waitMessages(10, `user:${user}`);
      assert.deepEqual(
        got.map((m) => m.data),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.equal(c.frames.filter((f) => f.type === 'unparsable').length, 0);
      assert.ok(
        c.raw.some((r) => r.split('\n').length > 1),
        `frames: ${JSON.stringify(c.raw)}`,
      );
    });

    it('sends one object per frame without batch', async () => {
      const user = uid('plain');
      const channel = `user:${user}`;
      const c = await connect(user);
      await Promise.all(Array.from({ length: 10 }, (_, i) => api(node, 'POST', '/v1/publish', { channel, topic: 'burst', data: i })));
      await c.waitMessages(10, channel);
      assert.ok(
        c.raw.every((r) => !r.includes('\n')),
        `frames: ${JSON.stringify(c.raw)}`,
      );
    });
  });

  describe('topic', () => {
    it('puts the topic on every message, whatever published it', async () => {
      const group = uid('g');
      const user = uid('topics');
      const c = await connect(user, { groups: [group] });
      const peer = await connect(uid('peer'), { groups: [group] });
      await peer.request({ type: 'send', to: user, topic: 'from-send', data: null });
      await peer.request({ type: 'publish', channel: `group:${group}`, topic: 'from-publish', data: null });
      await api(node, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 'from-http', data: null });
      await api(node, 'POST', '/v1/publish', { channel: `group:${group}`, topic: 'from-http-group' });
      const got = await c.waitMessages(4);
      assert.deepEqual(got.map((m) => m.topic).sort(), ['from-http', 'from-http-group', 'from-publish', 'from-send']);
      for (const m of got) assert.ok(Object.hasOwn(m, 'topic') && typeof m.topic === 'string');
    });
  });
});
