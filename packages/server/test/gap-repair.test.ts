/**
 * A publication that never reached this node (Redis pub/sub delivers at most once) must not leave
 * a silent hole: when a later offset arrives, the session fills the gap from history first.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, nodeFixture } from './helpers.js';

describe('live gap repair', () => {
  const fx = nodeFixture();

  it('fills a missing offset from history before the next live message, in order, once', async () => {
    const alice = await fx.connect('alice', { groups: ['g'] });
    await api(fx.node, 'POST', '/v1/publish', { channel: 'group:g', topic: 't', data: 1 });
    await alice.waitMessages(1, 'group:g');
    // Appended to history but never handed to the broker: exactly what a lost pub/sub message looks like.
    await fx.node.node.engine.history.append('group:g', { from: null, topic: 't', data: 2, ts: Date.now() });
    await fx.node.node.engine.history.append('group:g', { from: null, topic: 't', data: 3, ts: Date.now() });
    await api(fx.node, 'POST', '/v1/publish', { channel: 'group:g', topic: 't', data: 4 });
    const got = await alice.waitMessages(4, 'group:g');
    assert.deepEqual(
      got.map((m) => [m.offset, m.data]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
      ],
    );
    const metrics = await (await fetch(`${fx.node.url}/metrics`)).text();
    assert.match(metrics, /switchboard_gaps_total\{node="n-test"\} 1/);
  });

  it('fills a gap right after offset 0: the first publications of a channel lost between nodes', async () => {
    const alice = await fx.connect('alice', { groups: ['first'] });
    const welcome = alice.frames.find((f) => f.type === 'welcome') as { subscriptions: Record<string, { offset: number }> };
    assert.equal(welcome.subscriptions['group:first']?.offset, 0, 'the channel is empty when alice arrives');
    await fx.node.node.engine.history.append('group:first', { from: null, topic: 't', data: 1, ts: Date.now() });
    await fx.node.node.engine.history.append('group:first', { from: null, topic: 't', data: 2, ts: Date.now() });
    await api(fx.node, 'POST', '/v1/publish', { channel: 'group:first', topic: 't', data: 3 });
    const got = await alice.waitMessages(3, 'group:first');
    assert.deepEqual(
      got.map((m) => [m.offset, m.data]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
    );
  });
});
