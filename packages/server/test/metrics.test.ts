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
