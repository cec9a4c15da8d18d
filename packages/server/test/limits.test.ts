/**
 * The limits of PROTOCOL.md "Limits", each with the option that configures it, against a real
 * node: frame size (1009), frame rate (`rate_limited`, then 4029), outbound buffer (4008) and
 * heartbeat. Each limit's victim is checked to be the only one affected.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { TestClient, api, sleep, startNode, token, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

/** The TCP socket under a ws client (not part of ws's typed API). */
function tcpSocket(client: TestClient): Socket {
  return (client.ws as unknown as { _socket: Socket })._socket;
}

/** Sends every frame in one TCP write, so the server sees them together. */
function sendAtOnce(client: TestClient, frames: unknown[]): void {
  const socket = tcpSocket(client);
  socket.cork();
  for (const frame of frames) client.send(frame);
  socket.uncork();
}

/** Asserts that `client` is still served: a ping with an id is answered ok. */
async function assertServed(client: TestClient): Promise<void> {
  const reply = await client.request({ type: 'ping' });
  assert.equal(reply.ok, true);
  assert.equal(client.closeCode, undefined);
}

describe('limit: maxPayloadBytes', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ maxPayloadBytes: 2048 })));
  after(() => node.stop());

  it('closes a session that sends a frame over maxPayloadBytes with 1009, and only that one', async () => {
    const big = await TestClient.connect(node, 'big');
    const other = await TestClient.connect(node, 'other');
    try {
      // A frame just under the limit is fine.
      const fits = await big.request({ type: 'send', to: 'other', topic: 't', data: 'x'.repeat(1800) });
      assert.equal(fits.ok, true);
      big.send({ type: 'send', to: 'other', topic: 't', data: 'x'.repeat(3000) });
      const { code } = await big.waitClose();
      assert.equal(code, 1009);
      await assertServed(other);
      const msg = await other.next((f) => f.type === 'message');
      assert.equal(msg.data.length, 1800, 'only the frame within the limit was delivered');
      await sleep(50);
      assert.equal(other.messages().length, 1, 'the oversized frame was never published');
    } finally {
      await Promise.all([big.close(), other.close()]);
    }
  });
});

describe('limit: rate (rateLimitPerSecond, rateLimitBurst)', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ rateLimitPerSecond: 10, rateLimitBurst: 10 })));
  after(() => node.stop());

  it('answers a burst of 15 requests with 10 ok replies and 5 rate_limited replies', async () => {
    const client = await TestClient.connect(node, 'bursty');
    try {
      sendAtOnce(
        client,
        Array.from({ length: 15 }, (_, i) => ({ type: 'ping', id: i + 1 })),
      );
      const replies = await Promise.all(Array.from({ length: 15 }, (_, i) => client.next((f) => f.type === 'reply' && f.id === i + 1)));
      const ok = replies.filter((r) => r.ok === true);
      const limited = replies.filter((r) => r.ok === false);
      assert.equal(ok.length, 10);
      assert.equal(limited.length, 5);
      for (const r of limited) assert.equal(r.error.code, 'rate_limited');
      // The budget is spent in arrival order: the first 10 pass.
      assert.deepEqual(
        ok.map((r) => r.id),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.equal(client.closeCode, undefined, 'a short burst does not close the session');
    } finally {
      await client.close();
    }
  });

  it('lets a rate-limited session continue once the bucket refills', async () => {
    const client = await TestClient.connect(node, 'patient');
    try {
      sendAtOnce(
        client,
        Array.from({ length: 12 }, (_, i) => ({ type: 'ping', id: 100 + i })),
      );
      const last = await client.next((f) => f.type === 'reply' && f.id === 111);
      assert.equal(last.error?.code, 'rate_limited');
      await sleep(300); // 10/s: three tokens back
      await assertServed(client);
    } finally {
      await client.close();
    }
  });

  it('closes a sustained flood with 4029 while another session keeps working', async () => {
    const flooder = await TestClient.connect(node, 'flooder');
    const other = await TestClient.connect(node, 'calm');
    try {
      const before = node.node.sessionCount;
      for (let i = 0; i < 500; i++) flooder.send({ type: 'ping', id: i });
      const { code, reason } = await flooder.waitClose();
      assert.equal(code, 4029);
      assert.match(reason, /rate/);
      assert.ok(
        flooder.frames.some((f) => f.type === 'reply' && f.error?.code === 'rate_limited'),
        'rate_limited replies came before the close',
      );
      await eventually(() => node.node.sessionCount === before - 1, { intervalMs: 10, message: 'the flooder session to be released' });
      await assertServed(other);
    } finally {
      await Promise.all([flooder.close(), other.close()]);
    }
  });
});

describe('limit: outbound buffer (maxOutboundBytes)', () => {
  let node: TestNode;
  before(async () => (node = await startNode()));
  after(() => node.stop());

  it('closes a consumer that stops reading with 4008, holding bounded memory, and the node stays healthy', async () => {
    const slow = await TestClient.connect(node, 'slow');
    const other = await TestClient.connect(node, 'fast');
    const socket = tcpSocket(slow);
    try {
      const sessionsBefore = node.node.sessionCount;
      socket.pause();
      const data = 'x'.repeat(16 * 1024);
      const maxMessages = 2400; // ~38 MB: well past what kernel buffers and 1 MiB of queue can hold
      const heapBefore = process.memoryUsage().heapUsed;
      let heapPeak = heapBefore;
      let published = 0;
      while (published < maxMessages && node.node.sessionCount === sessionsBefore) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, () => api(node, 'POST', '/v1/publish', { channel: 'user:slow', topic: 'bulk', data })),
        );
        for (const res of batch) assert.equal(res.status, 200, JSON.stringify(res.body));
        published += batch.length;
        heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      }
      assert.equal(node.node.sessionCount, sessionsBefore - 1, `the slow session was not closed after ${published} messages`);
      const growthMb = (heapPeak - heapBefore) / 2 ** 20;
      assert.ok(growthMb < 64, `heap grew by ${growthMb.toFixed(1)} MB while publishing to a stalled consumer`);

      socket.resume();
      const { code } = await slow.waitClose(10_000);
      assert.equal(code, 4008);

      // The node still serves others, on the HTTP API and over sockets.
      await assertServed(other);
      const res = await api(node, 'POST', '/v1/publish', { channel: 'user:fast', topic: 'after', data: 1 });
      assert.equal(res.status, 200);
      const msg = await other.next((f) => f.type === 'message' && f.topic === 'after');
      assert.equal(msg.data, 1);
      const health = await fetch(node.url + '/readyz');
      assert.equal(health.status, 200);
    } finally {
      socket.resume();
      await Promise.all([slow.close(), other.close()]);
    }
  });
});

describe('limit: heartbeat (heartbeatIntervalMs)', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ heartbeatIntervalMs: 200 })));
  after(() => node.stop());

  it('announces the interval in welcome.heartbeat, in seconds', async () => {
    const client = await TestClient.connect(node, 'hb');
    try {
      const welcome = client.frames.find((f) => f.type === 'welcome');
      assert.equal(welcome?.heartbeat, 0.2);
    } finally {
      await client.close();
    }
  });

  it('drops a peer that does not answer pings within about two intervals', async () => {
    const dead = new TestClient(`${node.wsUrl}?token=${await token('silent')}`, { autoPong: false });
    try {
      await dead.next((f) => f.type === 'welcome');
      const before = node.node.sessionCount;
      const t0 = Date.now();
      await dead.waitClose(5000);
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 1500, `dropped after ${elapsed} ms; expected about 2 × 200 ms`);
      await eventually(() => node.node.sessionCount === before - 1, { intervalMs: 10, message: 'the dead session to be released' });
    } finally {
      dead.ws.terminate();
    }
  });

  it('keeps a peer that answers pings connected for well over two intervals', async () => {
    const alive = await TestClient.connect(node, 'lively');
    try {
      let pings = 0;
      alive.ws.on('ping', () => pings++);
      await sleep(1200);
      assert.equal(alive.ws.readyState, WebSocket.OPEN);
      assert.equal(alive.closeCode, undefined);
      assert.ok(pings >= 2, `expected server pings every 200 ms, saw ${pings} in 1.2 s`);
      await assertServed(alive);
    } finally {
      await alive.close();
    }
  });
});
