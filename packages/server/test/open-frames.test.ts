/**
 * A careless front end sends as soon as the socket opens, before `welcome` (PROTOCOL.md: frames
 * before `welcome` are processed after it, in order). The node must hold every frame from the
 * moment of the upgrade, while it still verifies the token, and answer each one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { SwitchboardNode, TokenVerifier, resolveOptions } from '../src/index.js';
import { API_KEY, SECRET, nodeFixture, token, type Frame } from './helpers.js';

/** Opens a socket and sends `frames` in `open`; resolves with every frame received until `until` says stop. */
function sendAtOpen(url: string, frames: unknown[], until: (got: Frame[]) => boolean, timeoutMs = 10_000): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const got: Frame[] = [];
    const timer = setTimeout(() => {
      ws.terminate();
      reject(
        new Error(
          `timed out after ${got.length} frames (${got
            .map((f) => f.type)
            .slice(0, 5)
            .join(', ')})`,
        ),
      );
    }, timeoutMs);
    ws.on('open', () => {
      for (const f of frames) ws.send(JSON.stringify(f));
    });
    ws.on('message', (data) => {
      got.push(JSON.parse(data.toString()) as Frame);
      if (until(got)) {
        clearTimeout(timer);
        ws.close();
        resolve(got);
      }
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const replies = (frames: Frame[]) => frames.filter((f) => f.type === 'reply');

describe('frames sent at open, before welcome', () => {
  it('answers every frame, in order, while the token is still being verified', async () => {
    const logs: string[] = [];
    const options = resolveOptions({ port: 0, jwtSecret: SECRET, apiKey: API_KEY, nodeId: 'n-slow', logLevel: 'warn' });
    const real = new TokenVerifier(options);
    // A verifier that takes 300 ms, as a remote key fetch or a loaded machine would.
    const slow = { verify: async (t: string) => (await new Promise((r) => setTimeout(r, 300)), real.verify(t)) };
    const node = new SwitchboardNode(options, {
      verifier: slow,
      logDestination: new Writable({ write: (c: Buffer, _e, done) => (logs.push(c.toString()), done()) }),
    });
    const { url } = await node.start();
    try {
      const frames = [
        { type: 'send', to: 'bob', topic: 'chat', data: { n: 1 }, id: 1 },
        { type: 'ping', id: 2 },
        { type: 'publish', channel: 'user:alice', topic: 'chat', data: { n: 3 }, id: 3 },
        { type: 'subscribe', channel: 'group:nope', id: 4 },
        { type: 'send', to: 'bob', topic: 'chat', data: { n: 5 }, id: 5 },
      ];
      const got = await sendAtOpen(`${url.replace('http', 'ws')}/ws?token=${await token('alice')}`, frames, (g) => replies(g).length === 5);
      assert.equal(got[0]?.type, 'welcome', 'welcome comes first');
      assert.deepEqual(
        replies(got).map((r) => [r.id, r.ok]),
        [
          [1, true],
          [2, true],
          [3, true],
          [4, false],
          [5, true],
        ],
      );
      assert.equal(replies(got)[3]?.error.code, 'forbidden');
      const sent = replies(got).filter((r) => r.id === 1 || r.id === 5);
      assert.ok(sent[1]!.offset === sent[0]!.offset + 1, 'the two sends to bob were published in order');
    } finally {
      await node.stop();
    }
  });

  describe('a storm of clients that each send at open', () => {
    const fx = nodeFixture({ rateLimitPerSecond: 1000, rateLimitBurst: 1000 });

    it('gives every one of 1,000 clients connecting at once the reply to its frame', async () => {
      const clients = 1000;
      const results = await Promise.allSettled(
        Array.from({ length: clients }, async (_, i) => {
          const url = `${fx.node.wsUrl}?token=${await token(`u${i}`)}`;
          const frame = { type: 'send', to: `u${i}`, topic: 'hello', data: { i }, id: `c${i}` };
          const got = await sendAtOpen(url, [frame], (g) => g.some((f) => f.type === 'reply'), 30_000);
          return got.find((f) => f.type === 'reply')!;
        }),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(
        failed.slice(0, 3).map((r) => String((r as PromiseRejectedResult).reason)),
        [],
        `${failed.length} clients got no reply`,
      );
      const ok = results.map((r) => (r as PromiseFulfilledResult<Frame>).value);
      assert.equal(ok.filter((r) => r.ok === true).length, clients, 'every reply is ok');
      assert.ok(
        ok.every((r) => r.offset === 1),
        'each frame was published once, as the first message of its user channel',
      );
    });
  });
});
