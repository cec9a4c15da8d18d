/**
 * A publication the broker loses while its link is down (Redis pub/sub and core NATS deliver at
 * most once) reaches the subscribers once the link is back, even on a channel that stays quiet:
 * the node reads each channel's latest position from history and the sessions behind it fetch
 * what they missed. A real node and real WebSocket clients; the broker is the node's own, made to
 * lose one publication and to report its link lost and back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BrokerHandler } from '../src/broker/broker.js';
import { api, sleep, startNode, TestClient } from './helpers.js';

describe('catch-up after the broker link came back', () => {
  it('delivers a publication the broker lost, without waiting for the next one, once and in order', async () => {
    let handler: BrokerHandler | undefined;
    let loseNext = false;
    const node = await startNode({}, 'node', (engine) => {
      const broker = engine.broker;
      const start = broker.start.bind(broker);
      broker.start = (h) => {
        handler = h;
        return start(h);
      };
      const publish = broker.publish.bind(broker);
      broker.publish = async (channel, message) => {
        if (loseNext && message.kind === 'message') {
          loseNext = false;
          return; // accepted by the broker, delivered to no one
        }
        return publish(channel, message);
      };
    });
    try {
      const bob = await TestClient.connect(node, 'bob', { groups: ['ops'] });
      const first = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: 1 });
      assert.equal(first.status, 200);
      await bob.next((f) => f.type === 'message' && f.data === 1);

      handler!.link('down', 'test: link lost');
      loseNext = true;
      const lost = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: 2 });
      assert.equal(lost.status, 200, 'in history, lost live');
      await sleep(200);
      assert.equal(bob.frames.filter((f) => f.type === 'message' && f.data === 2).length, 0, 'not delivered while the link is down');

      handler!.link('up', 'test: link back');
      const got = await bob.next((f) => f.type === 'message' && f.data === 2, 5000);
      assert.equal(got.offset, lost.body.offset);

      await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: 3 });
      await bob.next((f) => f.type === 'message' && f.data === 3);
      const seen = bob.frames.filter((f) => f.type === 'message' && f.channel === 'group:ops').map((f) => f.data);
      assert.deepEqual(seen, [1, 2, 3], 'each once, in order');
      bob.ws.close();
    } finally {
      await node.stop();
    }
  });
});
