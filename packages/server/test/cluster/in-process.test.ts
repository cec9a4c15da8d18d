/**
 * The cluster's semantics on the in-process tier (three nodes on one memory bus, see
 * in-process.ts), for every routing strategy: cross-node send, group and broadcast, presence
 * across nodes, resume on another node, live gap repair across nodes, and — with hash routing —
 * exactly the sessions whose owner changed are moved when a node joins. The same scenarios run
 * on node processes and Redis in cluster.test.ts and hash-routing.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { HashRing } from '../../src/registry/hash-ring.js';
import { TestClient, api, type TestNode } from '../helpers.js';
import { InProcessCluster } from './in-process.js';

/** Resolves once `client` has a frame matching `pred` after a marker published to its user channel: nothing else came before it. */
async function settled(node: TestNode, client: TestClient, user: string): Promise<void> {
  const marker = `marker-${Math.random()}`;
  await api(node, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 'marker', data: marker });
  await client.next((f) => f.type === 'message' && f.data === marker);
}

for (const routing of ['interest', 'broadcast', 'hash'] as const) {
  describe(`in-process cluster of three nodes, ${routing} routing`, () => {
    const cluster = new InProcessCluster({ routing, presenceTtlMs: 3000 });
    let n1: TestNode, n2: TestNode, n3: TestNode;
    const open: TestClient[] = [];
    const connect = async (node: TestNode, user: string, claims: Record<string, unknown> = {}, query = '') => {
      const c = await TestClient.connect(node, user, claims, query);
      open.push(c);
      return c;
    };
    before(async () => {
      [n1, n2, n3] = await Promise.all([cluster.start('n1'), cluster.start('n2'), cluster.start('n3')]);
    });
    after(async () => {
      await Promise.all(open.map((c) => c.close()));
      await cluster.stop();
    });

    it('a send reaches every session of the user, on every node, exactly once', async () => {
      const tabs = [await connect(n1, 'bob'), await connect(n2, 'bob'), await connect(n3, 'bob')];
      const alice = await connect(n1, 'alice');
      const replies = [];
      for (let i = 1; i <= 20; i++) replies.push(await alice.request({ type: 'send', to: 'bob', topic: 'chat', data: i }));
      for (const tab of tabs) {
        const got = await tab.waitMessages(20, 'user:bob');
        assert.deepEqual(
          got.map((m) => m.data),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        assert.deepEqual(
          got.map((m) => m.offset),
          replies.map((r) => r.offset),
        );
      }
      for (const tab of tabs) await settled(n2, tab, 'bob');
      for (const tab of tabs) assert.equal(tab.messages('user:bob').filter((m) => m.topic === 'chat').length, 20, 'no duplicates');
    });

    it('a group publish and a broadcast reach every member on every node exactly once', async () => {
      const members = [
        await connect(n1, 'g1', { groups: ['ops'] }),
        await connect(n2, 'g2', { groups: ['ops'] }),
        await connect(n3, 'g3', { groups: ['ops'] }),
      ];
      const outsider = await connect(n2, 'outsider');
      assert.equal((await members[2]!.request({ type: 'publish', channel: 'group:ops', topic: 'alert', data: 'fire' })).ok, true);
      assert.equal((await api(n3, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'news', data: 'to all' })).status, 200);
      for (const m of members) {
        await m.waitMessages(1, 'group:ops');
        await m.waitMessages(1, 'broadcast');
      }
      await outsider.waitMessages(1, 'broadcast');
      for (const [i, m] of members.entries()) await settled(n1, m, `g${i + 1}`);
      for (const m of members) assert.equal(m.messages('group:ops').length, 1);
      for (const m of members) assert.equal(m.messages('broadcast').length, 1);
      assert.equal(outsider.messages('group:ops').length, 0);
    });

    it('two tabs of one user on two nodes give one join and one leave', async () => {
      const watcher = await connect(n3, 'watcher', { groups: ['team'] });
      const tab1 = await connect(n1, 'carol', { groups: ['team'] });
      await watcher.next((f) => f.type === 'presence' && f.user === 'carol' && f.event === 'join');
      const tab2 = await connect(n2, 'carol', { groups: ['team'] });
      const listed = await watcher.request({ type: 'presence', channel: 'group:team' });
      const carol = listed.users.find((u: { user: string }) => u.user === 'carol');
      assert.deepEqual({ sessions: carol.sessions, nodes: carol.nodes }, { sessions: 2, nodes: ['n1', 'n2'] });
      await tab1.close();
      await tab2.close();
      await watcher.next((f) => f.type === 'presence' && f.user === 'carol' && f.event === 'leave');
      await settled(n1, watcher, 'watcher');
      assert.deepEqual(
        watcher.frames.filter((f) => f.type === 'presence' && f.user === 'carol').map((f) => f.event),
        ['join', 'leave'],
      );
      assert.equal((await api(n1, 'GET', '/v1/users/carol')).body.online, false);
    });

    it('GET /v1/users and /v1/nodes see the whole cluster', async () => {
      await connect(n1, 'dave');
      await connect(n3, 'dave');
      const user = await api(n2, 'GET', '/v1/users/dave');
      assert.deepEqual(user.body.sessions.map((s: { node: string }) => s.node).sort(), ['n1', 'n3']);
      const nodes = await api(n2, 'GET', '/v1/nodes');
      assert.deepEqual(
        nodes.body.nodes.map((n: { node: string }) => n.node),
        ['n1', 'n2', 'n3'],
      );
    });

    it('a client that moves to another node resumes with every missed message once, in order', async () => {
      const first = await connect(n1, 'erin', { groups: ['log'] });
      const welcome = first.frames[0]!;
      await first.close();
      for (let i = 0; i < 25; i++)
        await api(n2, 'POST', '/v1/publish', { channel: i % 2 ? 'group:log' : 'user:erin', topic: 't', data: i });
      const resume = encodeResume({ 'user:erin': welcome.subscriptions['user:erin'], 'group:log': welcome.subscriptions['group:log'] });
      const moved = await connect(n3, 'erin', { groups: ['log'] }, `&resume=${resume}`);
      const w = moved.frames[0]!;
      assert.equal(w.subscriptions['user:erin'].recovered, true);
      assert.equal(w.subscriptions['group:log'].recovered, true);
      assert.deepEqual(
        (await moved.waitMessages(13, 'user:erin')).map((m) => m.data),
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24],
      );
      assert.deepEqual(
        (await moved.waitMessages(12, 'group:log')).map((m) => m.data),
        [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23],
      );
    });

    it('fills a publication lost between nodes from history, on the receiving node, in order', async () => {
      const member = await connect(n3, 'gina', { groups: ['lossy'] });
      await api(n1, 'POST', '/v1/publish', { channel: 'group:lossy', topic: 't', data: 1 });
      await member.waitMessages(1, 'group:lossy');
      // In the shared history but never handed to the bus: a message the broker lost.
      await cluster.shared.history.append('group:lossy', { from: null, topic: 't', data: 2, ts: Date.now() });
      await api(n1, 'POST', '/v1/publish', { channel: 'group:lossy', topic: 't', data: 3 });
      const got = await member.waitMessages(3, 'group:lossy');
      assert.deepEqual(
        got.map((m) => [m.offset, m.data]),
        [
          [1, 1],
          [2, 2],
          [3, 3],
        ],
      );
    });

    if (routing === 'hash') {
      it('when a node joins, moves exactly the sessions whose owner changed (4000), and they miss nothing', async () => {
        const users = Array.from({ length: 60 }, (_, i) => `h${i}`);
        const before = HashRing.from(['n1', 'n2', 'n3']);
        const after = HashRing.from(['n1', 'n2', 'n3', 'n4']);
        const nodeOf = (id: string) => [n1, n2, n3].find((n) => n.node.nodeId === id)!;
        const clients = new Map<string, TestClient>();
        for (const user of users) clients.set(user, await connect(nodeOf(before.nodeFor(user)!), user));
        const moving = users.filter((u) => after.nodeFor(u) === 'n4');
        assert.ok(moving.length > 5 && moving.length < 30, `${moving.length} of 60 users move to n4`);
        const n4 = await cluster.start('n4', { moveWindowMs: 300 });
        for (const user of moving) assert.equal((await clients.get(user)!.waitClose(5000)).code, 4000, `${user} moved`);
        const staying = users.filter((u) => !moving.includes(u));
        for (const user of staying) await settled(n4, clients.get(user)!, user);
        for (const user of staying) assert.equal(clients.get(user)!.ws.readyState, 1, `${user} stays connected`);
        // A moved user resumes on its new owner and gets what was sent meanwhile.
        const user = moving[0]!;
        const welcome = clients.get(user)!.frames[0]!;
        await api(n1, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 't', data: 'while moving' });
        const again = await connect(n4, user, {}, `&resume=${encodeResume({ [`user:${user}`]: welcome.subscriptions[`user:${user}`] })}`);
        assert.equal((await again.waitMessages(1, `user:${user}`))[0]!.data, 'while moving');
        await n4.stop();
      });
    }
  });
}
