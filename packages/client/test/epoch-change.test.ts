/**
 * A channel's history lost while a client stays connected (Redis restarted with nothing saved, its
 * keys evicted or deleted): the next publication starts a new epoch, and whatever the old epoch
 * had after the client's position may never reach it. The SDK tells the app with
 * `recovery-failed`, before the first message of the new epoch, as for a resume that could not be
 * filled. Against a real node on Redis; the history is lost by deleting this run's keys.
 */
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, startNode, token, type TestNode } from '../../server/test/helpers.js';
import { RedisFixture, deletePrefix, redisSkip } from '../../server/test/redis-helpers.js';
import { closeClients, connectClient, until } from './helpers.js';

describe('a live channel whose history was lost', { skip: redisSkip }, () => {
  const fixture = new RedisFixture();
  const prefix = `sbe:${randomUUID().slice(0, 8)}:`;
  let node: TestNode;
  before(async () => (node = await startNode({ engine: 'redis', redisPrefix: prefix, nodeId: 'n-epoch' })));
  after(async () => {
    closeClients();
    await node.stop();
    await deletePrefix(await fixture.client(), prefix);
    await fixture.cleanup();
  });

  it('emits recovery-failed with the new epoch before its first message, once, and the app gets the rest in order', async () => {
    const { client } = await connectClient(node.wsUrl, await token('ep'));
    const events: string[] = [];
    client.events.on('recovery-failed', (d) => events.push(`failed ${d.channel} ${d.epoch}:${d.offset}`));
    client.channel('user:ep').on('recovery-failed', (d) => events.push(`channel failed ${d.epoch}:${d.offset}`));
    client.events.on('message', (m) => events.push(`message ${m.epoch}:${m.offset}`));
    const publish = async (n: number) =>
      (await api(node, 'POST', '/v1/publish', { channel: 'user:ep', topic: 'tick', data: n })).body as { epoch: string; offset: number };

    const first = [await publish(1), await publish(2)];
    await until(() => events.length === 2, 'the first two messages');
    await deletePrefix(await fixture.client(), prefix);
    const later = [await publish(3), await publish(4)];
    assert.notEqual(later[0]!.epoch, first[0]!.epoch, 'the history starts a new epoch');
    await until(() => events.length === 6, 'the notice and the two later messages');

    const [e1, e2] = [first[0]!.epoch, later[0]!.epoch];
    assert.deepEqual(events, [
      `message ${e1}:1`,
      `message ${e1}:2`,
      `failed user:ep ${e2}:0`,
      `channel failed ${e2}:0`,
      `message ${e2}:1`,
      `message ${e2}:2`,
    ]);
    assert.deepEqual(client.position('user:ep'), { epoch: e2, offset: 2 });
  });
});
