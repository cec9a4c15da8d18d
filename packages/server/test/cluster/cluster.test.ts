/**
 * Cluster on Redis: three real node processes on loopback, real Redis, real clients, for every
 * routing strategy: the shared cluster scenarios (scenarios.ts, also run in-process), then what
 * only processes can show (kill -9).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume } from '@switchboard/protocol';
import { TestClient, api, token } from '../helpers.js';
import { redisSkip } from '../redis-helpers.js';
import { Cluster, type NodeProcess } from './harness.js';
import { OpenClients, clusterScenarios } from './scenarios.js';

const skip = redisSkip;

for (const routing of ['interest', 'broadcast', 'hash'] as const) {
  describe(`cluster of three nodes, ${routing} routing`, { skip }, () => {
    const cluster = new Cluster({ SWITCHBOARD_ROUTING: routing, SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
    let n1: NodeProcess, n2: NodeProcess, n3: NodeProcess;
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
