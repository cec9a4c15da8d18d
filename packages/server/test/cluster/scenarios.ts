/**
 * The cluster scenarios every tier runs — three in-process nodes on the memory engine
 * (in-process.test.ts) and three node processes on Redis (cluster.test.ts) — as socket.io-redis-
 * adapter's test-runner does: one list of behaviours, one harness per tier. Negative checks use a
 * marker barrier, not a sleep: the marker published after the thing that must not arrive comes
 * first, or a duplicate would have.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { TestClient, api, type TestNode } from '../helpers.js';

/** Three started nodes of one cluster, and a connect that the tier cleans up after. */
export interface ClusterUnderTest {
  nodes(): [TestNode, TestNode, TestNode];
  connect(node: TestNode, user: string, claims?: Record<string, unknown>, query?: string): Promise<TestClient>;
}

/** Resolves once `client` has a frame matching `pred` after a marker published to its user channel: nothing else came before it. */
export async function settled(node: TestNode, client: TestClient, user: string): Promise<void> {
  const marker = `marker-${Math.random()}`;
  await api(node, 'POST', '/v1/publish', { channel: `user:${user}`, topic: 'marker', data: marker });
  await client.next((f) => f.type === 'message' && f.data === marker);
}

/** Clients connected by a test, closed together at the end of its suite. */
export class OpenClients {
  private readonly open: TestClient[] = [];

  /** Connects as `user` (waits for `welcome`) and keeps the client to close later. */
  readonly connect = async (node: TestNode, user: string, claims: Record<string, unknown> = {}, query = ''): Promise<TestClient> => {
    return this.keep(await TestClient.connect(node, user, claims, query));
  };

  /** Keeps a client made otherwise. */
  keep(client: TestClient): TestClient {
    this.open.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((c) => c.close()));
  }
}

/** Registers the shared scenarios (call inside a `describe` whose hooks start the nodes). */
export function clusterScenarios(cluster: ClusterUnderTest): void {
  const connect = (...args: Parameters<ClusterUnderTest['connect']>) => cluster.connect(...args);
  it('a send reaches every session of the user, on every node, exactly once', async () => {
    const [n1, n2, n3] = cluster.nodes();
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
    const [n1, n2, n3] = cluster.nodes();
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
    const [n1, n2, n3] = cluster.nodes();
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
    const [n1, n2, n3] = cluster.nodes();
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
    const [n1, n2, n3] = cluster.nodes();
    const first = await connect(n1, 'erin', { groups: ['log'] });
    const welcome = first.frames[0]!;
    await first.close();
    for (let i = 0; i < 25; i++) await api(n2, 'POST', '/v1/publish', { channel: i % 2 ? 'group:log' : 'user:erin', topic: 't', data: i });
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
}
