/**
 * The soak's client pool on a real node: clients held by worker processes connect, are dropped and
 * come back, leave and are replaced as the scenario asks; this side's mirror of who is connected
 * follows; the logs shipped at the end judge as the clients' own would (a message nobody saw is lost).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClientPool } from '../../../chaos/client-pool.js';
import { judge, latestAcked, type Acked } from '../../../chaos/checker.js';
import { api, startNode, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

describe('chaos client pool', () => {
  let node: TestNode;
  let pool: ClientPool;
  const acked: Acked[] = [];

  before(async () => {
    node = await startNode();
    pool = new ClientPool(node.wsUrl, 2);
  });
  after(async () => {
    await pool.stop();
    await node.stop();
  });

  async function publish(channel: string, seq: number): Promise<void> {
    const res = await api(node, 'POST', '/v1/publish', { channel, topic: 'tick', data: { seq } });
    assert.equal(res.status, 200);
    acked.push({ channel, epoch: res.body.epoch as string, offset: res.body.offset as number, at: Date.now() });
  }

  it('opens, drops, replaces clients over its workers and ships logs the checker judges', async () => {
    const [a, b, c] = await pool.open(
      ['a', 'b', 'c'].map((id) => ({ id, groups: ['g'] })),
      true,
    );
    await eventually(() => [a, b, c].every((x) => x!.connected), { message: 'the mirror to see all three connected' });
    await publish('group:g', 1);
    await publish('user:a', 2);
    await eventually(async () => (await pool.lagging(latestAcked(acked))) === 0, { message: 'every client to see both' });

    b!.dropConnection();
    // From b's own log: the node's session count may be back to 3 before a poll sees it at 2 (the SDK retries within 100 ms).
    await eventually(async () => (await pool.logs()).logs.find((l) => l.id === 'b')!.drops.length === 1, { message: 'b to see its drop' });
    await publish('group:g', 3);
    c!.leave();
    const d = pool.add('d', ['g'], true);
    await eventually(() => d.connected && b!.connected, { message: 'b back and the newcomer d connected' });
    await publish('group:g', 4);
    await eventually(async () => (await pool.lagging(latestAcked(acked))) === 0, { message: 'every client still with us to see the last' });

    const { logs, load } = await pool.logs();
    const byId = new Map(logs.map((l) => [l.id, l]));
    assert.deepEqual([...byId.keys()].sort(), ['a', 'b', 'c', 'd'], 'the one that left is judged too');
    assert.deepEqual(
      byId.get('a')!.seen.map((s) => [s.channel, s.offset]),
      [
        ['group:g', acked[0]!.offset],
        ['user:a', acked[1]!.offset],
        ['group:g', acked[2]!.offset],
        ['group:g', acked[3]!.offset],
      ],
    );
    assert.equal(byId.get('b')!.drops.length, 1, 'b dropped once');
    assert.ok(byId.get('b')!.drops[0]!.back !== undefined, 'and came back');
    assert.ok(byId.get('c')!.leftAt !== undefined, 'c left');
    assert.equal(byId.get('d')!.starts!['group:g']!.offset, acked[2]!.offset, 'd started where it joined');
    assert.ok(load.delayMaxMs >= 0);

    const verdict = judge(acked, logs);
    assert.deepEqual([verdict.lost, verdict.duplicated, verdict.outOfOrder], [0, 0, 0]);
    // The same logs against one more acknowledged message that nobody saw: lost by everyone in the group.
    const unseen = { ...acked[3]!, offset: acked[3]!.offset + 1, at: acked[3]!.at };
    assert.equal(judge([...acked, unseen], logs).lost, 3, 'a, b and d (c had left)');
  });
});
