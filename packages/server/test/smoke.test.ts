import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, startNode, type TestNode } from './helpers.js';

describe('node smoke', () => {
  let node: TestNode;
  before(async () => (node = await startNode()));
  after(() => node.stop());

  it('delivers a send from alice to bob with the server-set sender', async () => {
    const alice = await TestClient.connect(node, 'alice');
    const bob = await TestClient.connect(node, 'bob');
    const reply = await alice.request({ type: 'send', to: 'bob', topic: 'chat', data: { text: 'hi' }, from: 'mallory' });
    assert.equal(reply.ok, true);
    const msg = await bob.next((f) => f.type === 'message');
    assert.deepEqual(
      { channel: msg.channel, from: msg.from, topic: msg.topic, data: msg.data, offset: msg.offset, epoch: msg.epoch },
      { channel: 'user:bob', from: 'alice', topic: 'chat', data: { text: 'hi' }, offset: reply.offset, epoch: reply.epoch },
    );
    await Promise.all([alice.close(), bob.close()]);
  });
});
