/**
 * The node's metrics move as operations.md says: a frame is counted once, by frame type.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nodeFixture } from './helpers.js';

async function framesIn(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^switchboard_frames_in_total\{type="([a-z_]+)",node="[^"]+"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

describe('switchboard_frames_in_total', () => {
  const fx = nodeFixture();

  it('moves by exactly N for N frames, by frame type', async () => {
    const alice = await fx.connect('alice');
    const before = await framesIn(fx.node.url);
    for (let i = 0; i < 7; i++) await alice.request({ type: 'send', to: 'bob', topic: 't', data: i });
    await alice.request({ type: 'ping' });
    alice.send('ping');
    await alice.next((f) => f.type === 'pong' && f.bare === true);
    alice.send('{not json');
    await alice.next((f) => f.type === 'error');
    alice.send(Buffer.from([1, 2, 3]));
    await alice.next((f) => f.type === 'error' && /binary/.test(f.error.message));
    const after = await framesIn(fx.node.url);
    const moved = Object.fromEntries(
      Object.entries(after)
        .map(([k, v]) => [k, v - (before[k] ?? 0)])
        .filter(([, v]) => v !== 0),
    );
    assert.deepEqual(moved, { send: 7, ping: 2, invalid: 1, binary: 1 });
  });
});

/** The `_count` of histogram `name` on the node's /metrics, for the series whose labels contain `labels`. */
async function histogramCount(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}_count\\{([^}]*)\\} (\\d+)$`, 'gm'))) if (m[1]!.includes(labels)) total += Number(m[2]);
  return total;
}

describe('switchboard_delivery_lag_seconds and switchboard_broker_publish_seconds', () => {
  const fx = nodeFixture();

  it('observe each publication once: per delivering node, not per socket, and per broker publish', async () => {
    const url = fx.node.url;
    const tabs = await Promise.all([fx.connect('bob'), fx.connect('bob'), fx.connect('bob')]);
    const alice = await fx.connect('alice');
    const lagBefore = await histogramCount(url, 'switchboard_delivery_lag_seconds');
    const confirmsBefore = await histogramCount(url, 'switchboard_broker_publish_seconds', 'broker="memory"');
    for (let i = 0; i < 5; i++) await alice.request({ type: 'send', to: 'bob', topic: 't', data: i });
    for (const tab of tabs) await tab.next((f) => f.type === 'message' && f.data === 4);
    // Nobody on this node is in carol's channel: published, never delivered here.
    await alice.request({ type: 'send', to: 'carol', topic: 't', data: 'x' });
    assert.equal((await histogramCount(url, 'switchboard_delivery_lag_seconds')) - lagBefore, 5, 'five publications, three sockets each');
    assert.equal((await histogramCount(url, 'switchboard_broker_publish_seconds', 'broker="memory"')) - confirmsBefore, 6);
    const text = await (await fetch(`${url}/metrics`)).text();
    const sum = Number(/^switchboard_delivery_lag_seconds_sum\{[^}]*\} (\S+)$/m.exec(text)![1]);
    assert.ok(sum >= 0 && sum < 5, `lag sum ${sum} s for local deliveries`);
  });
});
