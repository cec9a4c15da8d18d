/**
 * Cluster on Redis: three real node processes on loopback, real Redis, real clients. Run for both
 * routing strategies (`interest` and `broadcast`): the same suite must pass.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { TestClient, api, sleep, token } from '../helpers.js';
import { redisSkip } from '../redis-helpers.js';
import { Cluster, type NodeProcess } from './harness.js';

const skip = redisSkip;

for (const routing of ['interest', 'broadcast', 'hash'] as const) {
  describe(`cluster of three nodes, ${routing} routing`, { skip }, () => {
    const cluster = new Cluster({ SWITCHBOARD_ROUTING: routing, SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
    let n1: NodeProcess, n2: NodeProcess, n3: NodeProcess;
    const open: TestClient[] = [];
    const connect = async (node: NodeProcess, user: string, claims: Record<string, unknown> = {}, query = '') => {
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
      await sleep(200);
      for (const tab of tabs) assert.equal(tab.messages('user:bob').length, 20, 'no duplicates');
    });

    it('a group publish and a broadcast reach every member on every node exactly once', async () => {
      const members = [
        await connect(n1, 'g1', { groups: ['ops'] }),
        await connect(n2, 'g2', { groups: ['ops'] }),
        await connect(n3, 'g3', { groups: ['ops'] }),
      ];
      const outsider = await connect(n2, 'outsider');
      const pub = await members[2]!.request({ type: 'publish', channel: 'group:ops', topic: 'alert', data: 'fire' });
      assert.equal(pub.ok, true);
      const all = await api(n3, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'news', data: 'to all' });
      assert.equal(all.status, 200);
      for (const m of members) {
        await m.waitMessages(1, 'group:ops');
        await m.waitMessages(1, 'broadcast');
      }
      await outsider.waitMessages(1, 'broadcast');
      await sleep(200);
      for (const m of members) assert.equal(m.messages('group:ops').length, 1);
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
      await sleep(300);
      await tab2.close();
      await watcher.next((f) => f.type === 'presence' && f.user === 'carol' && f.event === 'leave');
      await sleep(300);
      assert.deepEqual(
        watcher.frames.filter((f) => f.type === 'presence' && f.user === 'carol').map((f) => f.event),
        ['join', 'leave'],
      );
      const user = await api(n1, 'GET', '/v1/users/carol');
      assert.equal(user.body.online, false);
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
      const mine = await moved.waitMessages(13, 'user:erin');
      const log = await moved.waitMessages(12, 'group:log');
      assert.deepEqual(
        mine.map((m) => m.data),
        [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24],
      );
      assert.deepEqual(
        log.map((m) => m.data),
        [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23],
      );
    });

    it('kill -9 of a node: its users get leave within the lease, and its clients resume on another node', async () => {
      const victim = await cluster.start(`victim-${routing}`);
      const watcher = await connect(n1, 'w2', { groups: ['sre'] });
      const frank = new TestClient(`${victim.wsUrl}?token=${await token('frank', { groups: ['sre'] })}`);
      const welcome = await frank.next((f) => f.type === 'welcome');
      await watcher.next((f) => f.type === 'presence' && f.user === 'frank' && f.event === 'join');
      await victim.kill9();
      const killedAt = Date.now();
      for (let i = 0; i < 10; i++) await api(n2, 'POST', '/v1/publish', { channel: 'group:sre', topic: 't', data: i });
      await watcher.next((f) => f.type === 'presence' && f.user === 'frank' && f.event === 'leave', 12_000);
      const leaveAfter = Date.now() - killedAt;
      assert.ok(leaveAfter < 3000 * 2 + 2000, `leave after ${leaveAfter} ms with a 3 s lease`);
      const resumed = await connect(
        n2,
        'frank',
        { groups: ['sre'] },
        `&resume=${encodeResume({ 'group:sre': welcome.subscriptions['group:sre'] })}`,
      );
      assert.equal(resumed.frames[0]!.subscriptions['group:sre'].recovered, true);
      const got = await resumed.waitMessages(10, 'group:sre');
      assert.deepEqual(
        got.map((m) => m.data),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      const nodes = await api(n1, 'GET', '/v1/nodes');
      assert.ok(!nodes.body.nodes.some((n: { node: string }) => n.node === victim.id), 'the dead node left the registry');
    });
  });
}
