/**
 * Presence (PROTOCOL.md "Presence"): `join`/`leave` frames are per user, not per session, only
 * `group:` channels carry them, and the `presence` frame and the HTTP API list who is there.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, api, nodeFixture, type Frame, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

/** Presence frames `client` received about `user` (on any channel). */
function presenceOf(client: TestClient, user: string, channel?: string): Frame[] {
  return client.frames.filter((f) => f.type === 'presence' && f.user === user && (channel === undefined || f.channel === channel));
}

/**
 * Publishes a marker message on `channel` and waits until `client` has it. The node runs on the
 * memory broker, which delivers synchronously with each publish, in publish order across channels,
 * and a presence event is published as soon as the presence store has changed: so every presence
 * frame published before the marker has reached `client` once the marker has. A test that asserts
 * that some presence frame did not come calls this after whatever would have caused it, instead of
 * sleeping.
 */
async function barrier(node: TestNode, client: TestClient, channel: string): Promise<Frame> {
  const marker = `marker-${Math.random()}`;
  const res = await api(node, 'POST', '/v1/publish', { channel, topic: 'marker', data: { marker } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return client.next((f) => f.type === 'message' && f.channel === channel && f.data?.marker === marker);
}

/** Waits until the presence store lists `user` in `channel` with `sessions` sessions (0: not listed). */
async function listedWith(node: TestNode, channel: string, user: string, sessions: number): Promise<void> {
  await eventually(
    async () => {
      const res = await api(node, 'GET', `/v1/presence/${channel}`);
      assert.equal((res.body.users as Frame[]).find((u) => u.user === user)?.sessions ?? 0, sessions);
    },
    { message: `${user} listed with ${sessions} session(s) in ${channel}` },
  );
}

const byUser = (a: Frame, b: Frame) => String(a.user).localeCompare(String(b.user));

describe('presence', () => {
  const fixture = nodeFixture();
  let node: TestNode;
  before(() => (node = fixture.node));
  const connect = (user: string, claims: Record<string, unknown> = {}) => fixture.connect(user, claims);

  it("announces one join for a user's first tab and one leave after their last tab closes", async () => {
    const claims = { groups: ['ops1'] };
    const bob = await connect('bob1', claims);
    const tab1 = await connect('alice1', claims);
    const join = await bob.next((f) => f.type === 'presence' && f.user === 'alice1');
    assert.equal(typeof join.ts, 'number');
    assert.deepEqual({ ...join, ts: 0 }, { type: 'presence', channel: 'group:ops1', event: 'join', user: 'alice1', ts: 0 });

    // A session's join is announced before its welcome, so the marker comes after any join of tab2.
    const tab2 = await connect('alice1', claims);
    await barrier(node, bob, 'group:ops1');
    assert.deepEqual(
      presenceOf(bob, 'alice1').map((f) => f.event),
      ['join'],
      'a second tab sends no join',
    );

    // The server removes a closed session after the client's close completes: wait for the store.
    await tab1.close();
    await listedWith(node, 'group:ops1', 'alice1', 1);
    await barrier(node, bob, 'group:ops1');
    assert.deepEqual(
      presenceOf(bob, 'alice1').map((f) => f.event),
      ['join'],
      'closing one of two tabs sends no leave',
    );

    await tab2.close();
    const leave = await bob.next((f) => f.type === 'presence' && f.user === 'alice1' && f.event === 'leave');
    assert.equal(leave.channel, 'group:ops1');
    const marker = await barrier(node, bob, 'group:ops1');
    assert.deepEqual(
      presenceOf(bob, 'alice1').map((f) => f.event),
      ['join', 'leave'],
      'exactly one join and one leave',
    );
    assert.equal(bob.frames.indexOf(marker), bob.frames.indexOf(leave) + 1, 'nothing between the leave and the marker');
  });

  it('tells every subscriber of the group, and a later tab sees no join for its own user', async () => {
    const claims = { groups: ['ops2'] };
    const carol = await connect('carol2', claims);
    const dave = await connect('dave2', claims);
    await connect('alice2', claims);
    await carol.next((f) => f.type === 'presence' && f.user === 'alice2' && f.event === 'join');
    await dave.next((f) => f.type === 'presence' && f.user === 'alice2' && f.event === 'join');
    // Frames held for a session until its welcome are written right after it, before the marker.
    const self = await connect('alice2', claims);
    await barrier(node, self, 'group:ops2');
    assert.deepEqual(presenceOf(self, 'alice2'), [], 'the second tab joined after the join and sees none for itself');
  });

  it('announces a leave when the last tab drops without a close frame', async () => {
    const claims = { groups: ['ops8'] };
    const bob = await connect('bob8', claims);
    const alice = await connect('alice8', claims);
    await bob.next((f) => f.type === 'presence' && f.user === 'alice8' && f.event === 'join');
    alice.ws.terminate();
    const leave = await bob.next((f) => f.type === 'presence' && f.user === 'alice8' && f.event === 'leave');
    assert.equal(leave.channel, 'group:ops8');
  });

  it('sends no presence frames on user: and broadcast channels', async () => {
    // bob3 may subscribe to alice3's personal channel, so a join there would reach him.
    const bob = await connect('bob3', { groups: ['ops3'], channels: ['user:alice3'] });
    const sub = await bob.request({ type: 'subscribe', channel: 'user:alice3' });
    assert.equal(sub.ok, true);
    const alice = await connect('alice3', { groups: ['ops3'] });
    await bob.next((f) => f.type === 'presence' && f.user === 'alice3' && f.channel === 'group:ops3' && f.event === 'join');
    await alice.close();
    await bob.next((f) => f.type === 'presence' && f.user === 'alice3' && f.channel === 'group:ops3' && f.event === 'leave');
    // alice3's other channels may leave presence after group:ops3: wait until the last of them
    // (user:alice3, what GET /v1/users reads) is done, then for a marker.
    await eventually(async () => assert.equal((await api(node, 'GET', '/v1/users/alice3')).body.online, false), {
      message: 'alice3 offline',
    });
    await barrier(node, bob, 'group:ops3');
    await barrier(node, bob, 'user:alice3');
    const off = bob.frames.filter((f) => f.type === 'presence' && f.channel !== 'group:ops3');
    assert.deepEqual(off, [], 'presence only on the group channel');
    assert.deepEqual(presenceOf(bob, 'bob3', 'user:bob3'), []);
    assert.deepEqual(presenceOf(bob, 'bob3', 'broadcast'), []);

    const reply = await bob.request({ type: 'presence', channel: 'broadcast', id: 'p' });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'bad_frame');
  });

  it('lists users with session counts and node ids in the presence reply and GET /v1/presence', async () => {
    const claims = { groups: ['ops4'] };
    const bob = await connect('bob4', claims);
    await connect('alice4', claims);
    await connect('alice4', claims);
    const expected = [
      { user: 'alice4', sessions: 2, nodes: ['n-test'] },
      { user: 'bob4', sessions: 1, nodes: ['n-test'] },
    ];
    const listed = await eventually(
      async () => {
        const reply = await bob.request({ type: 'presence', channel: 'group:ops4' });
        assert.equal(reply.ok, true);
        assert.deepEqual([...(reply.users as Frame[])].sort(byUser), expected);
        return reply;
      },
      { message: 'the presence reply to list both users' },
    );
    assert.equal(listed.channel, 'group:ops4');

    const res = await api(node, 'GET', '/v1/presence/group:ops4');
    assert.equal(res.status, 200);
    assert.equal(res.body.channel, 'group:ops4');
    assert.deepEqual([...(res.body.users as Frame[])].sort(byUser), expected);

    const empty = await api(node, 'GET', '/v1/presence/group:nobody-here');
    assert.deepEqual({ status: empty.status, body: empty.body }, { status: 200, body: { channel: 'group:nobody-here', users: [] } });
  });

  it('answers forbidden to a presence request for a group the user is not in', async () => {
    const eve = await connect('eve5');
    const reply = await eve.request({ type: 'presence', channel: 'group:ops4', id: 7 });
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'forbidden');
  });

  it("announces a leave when the user's last session unsubscribes, and a join when it subscribes again", async () => {
    const claims = { groups: ['ops6'] };
    const bob = await connect('bob6', claims);
    const tab1 = await connect('alice6', claims);
    const tab2 = await connect('alice6', claims);
    await bob.next((f) => f.type === 'presence' && f.user === 'alice6' && f.event === 'join');

    // The reply to unsubscribe comes once its presence change is done (and a leave published).
    assert.equal((await tab1.request({ type: 'unsubscribe', channel: 'group:ops6' })).ok, true);
    await barrier(node, bob, 'group:ops6');
    assert.deepEqual(
      presenceOf(bob, 'alice6').map((f) => f.event),
      ['join'],
      'one tab still in the group: no leave',
    );

    assert.equal((await tab2.request({ type: 'unsubscribe', channel: 'group:ops6' })).ok, true);
    await bob.next((f) => f.type === 'presence' && f.user === 'alice6' && f.event === 'leave');
    const res = await api(node, 'GET', '/v1/presence/group:ops6');
    assert.deepEqual(res.body.users, [{ user: 'bob6', sessions: 1, nodes: ['n-test'] }]);
    assert.equal(tab2.closeCode, undefined, 'unsubscribing leaves the session open');

    assert.equal((await tab1.request({ type: 'subscribe', channel: 'group:ops6' })).ok, true);
    const rejoin = await bob.next((f) => f.type === 'presence' && f.user === 'alice6' && f.event === 'join');
    const marker = await barrier(node, bob, 'group:ops6');
    assert.deepEqual(
      presenceOf(bob, 'alice6').map((f) => f.event),
      ['join', 'leave', 'join'],
    );
    assert.equal(bob.frames.indexOf(marker), bob.frames.indexOf(rejoin) + 1, 'nothing between the join and the marker');
  });

  it('shows a user online with each session in GET /v1/users/{id}, and offline once gone', async () => {
    const before = Date.now();
    const tab1 = await connect('alice7');
    const tab2 = await connect('alice7');
    const ids = [tab1, tab2].map((c) => c.frames.find((f) => f.type === 'welcome')!.session as string).sort();

    const online = await eventually(
      async () => {
        const res = await api(node, 'GET', '/v1/users/alice7');
        assert.equal(res.body.sessions?.length, 2);
        return res;
      },
      { message: 'both sessions listed' },
    );
    assert.equal(online.status, 200);
    assert.equal(online.body.user, 'alice7');
    assert.equal(online.body.online, true);
    // Both sides sorted by code unit, so ids differing only in case keep one order.
    const sessions = [...(online.body.sessions as Frame[])].sort((a, b) => (a.session < b.session ? -1 : 1));
    assert.deepEqual(
      sessions.map((s) => ({ session: s.session, node: s.node })),
      ids.map((session) => ({ session, node: 'n-test' })),
    );
    for (const s of sessions) {
      assert.ok(s.since >= before - 1000 && s.since <= Date.now(), `since ${s.since} is when the session connected`);
    }

    await tab1.close();
    const one = await eventually(
      async () => {
        const res = await api(node, 'GET', '/v1/users/alice7');
        assert.equal(res.body.sessions?.length, 1);
        return res;
      },
      { message: 'one session left' },
    );
    assert.equal(one.body.online, true);

    await tab2.close();
    const offline = await eventually(
      async () => {
        const res = await api(node, 'GET', '/v1/users/alice7');
        assert.equal(res.body.online, false);
        return res;
      },
      { message: 'offline after the last session' },
    );
    assert.deepEqual(offline.body, { user: 'alice7', online: false, sessions: [] });

    const never = await api(node, 'GET', '/v1/users/never-seen');
    assert.deepEqual(
      { status: never.status, body: never.body },
      { status: 200, body: { user: 'never-seen', online: false, sessions: [] } },
    );
  });
});
