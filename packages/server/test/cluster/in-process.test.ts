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
import { OpenClients, clusterScenarios, settled } from './scenarios.js';

for (const routing of ['interest', 'broadcast', 'hash'] as const) {
  describe(`in-process cluster of three nodes, ${routing} routing`, () => {
    const cluster = new InProcessCluster({ routing, presenceTtlMs: 3000 });
    let n1: TestNode, n2: TestNode, n3: TestNode;
    const clients = new OpenClients();
    const { connect } = clients;
    before(async () => {
      [n1, n2, n3] = await Promise.all([cluster.start('n1'), cluster.start('n2'), cluster.start('n3')]);
    });
    after(async () => {
      await clients.closeAll();
      await cluster.stop();
    });

    clusterScenarios({ nodes: () => [n1, n2, n3], connect });

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
