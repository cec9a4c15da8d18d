/**
 * Upgrade-level behaviour (PROTOCOL.md "Connecting", "Limits", "Shutdown"): the `welcome` frame,
 * origin checks, the WebSocket path, connection limits, the handshake timeout, compression
 * negotiation and draining. Everything runs against a real node over loopback sockets.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import WebSocket from 'ws';
import { TestClient, api, sleep, startNode, token, type Frame, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

/**
 * Opens a WebSocket that the server must refuse with a plain HTTP response before the upgrade;
 * resolves with that response's status and JSON body, rejects if the upgrade succeeds.
 */
function refusedUpgrade(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number; body: Frame }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        ws.terminate();
        let body: Frame;
        try {
          body = JSON.parse(text) as Frame;
        } catch {
          body = { text };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`upgrade to ${url} succeeded, expected an HTTP refusal`));
    });
    // After a refusal `terminate()` reports an aborted handshake here; the promise is settled by then.
    ws.on('error', reject);
  });
}

/** A `?token=` URL for `user` on `node`. */
async function wsUrlFor(node: TestNode, user: string, claims: Record<string, unknown> = {}): Promise<string> {
  return `${node.wsUrl}?token=${await token(user, claims)}`;
}

/** Connects `user` with extra ws client options and waits for `welcome`. */
async function connectWith(
  node: TestNode,
  user: string,
  options: WebSocket.ClientOptions,
): Promise<{ client: TestClient; welcome: Frame }> {
  const client = new TestClient(await wsUrlFor(node, user), options);
  try {
    return { client, welcome: await client.next((f) => f.type === 'welcome') };
  } catch (err) {
    client.ws.terminate();
    throw err;
  }
}

describe('welcome frame', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ heartbeatIntervalMs: 1500 })));
  after(() => node.stop());

  it('names the session, user, node, heartbeat and the position of every automatic channel', async () => {
    await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: 1 });
    const ops = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: 2 });
    const bc = await api(node, 'POST', '/v1/publish', { channel: 'broadcast', topic: 't', data: 3 });
    assert.equal(ops.status, 200);
    assert.equal(bc.status, 200);

    const alice = await TestClient.connect(node, 'alice', { groups: ['ops', 'dev'] });
    try {
      const welcome = alice.frames[0]!;
      assert.equal(welcome.type, 'welcome', 'welcome must be the first frame');
      assert.match(welcome.session, /^s-[A-Za-z0-9_-]+$/);
      assert.equal(welcome.user, 'alice');
      assert.equal(welcome.node, 'n-test');
      assert.equal(welcome.heartbeat, 1.5, 'heartbeat is in seconds');
      const subs = welcome.subscriptions as Record<string, Frame>;
      assert.deepEqual(Object.keys(subs).sort(), ['broadcast', 'group:dev', 'group:ops', 'user:alice']);
      assert.deepEqual(subs['group:ops'], { epoch: ops.body.epoch, offset: 2 });
      assert.deepEqual(subs.broadcast, { epoch: bc.body.epoch, offset: 1 });
      for (const channel of ['user:alice', 'group:dev']) {
        // Nothing was published there yet: a fresh epoch at offset 0, and no `recovered` without `?resume=`.
        assert.equal(typeof subs[channel]!.epoch, 'string');
        assert.notEqual(subs[channel]!.epoch, '');
        assert.deepEqual(subs[channel], { epoch: subs[channel]!.epoch, offset: 0 });
      }
    } finally {
      await alice.close();
    }
  });

  it('gives every session its own id, also for two sessions of one user', async () => {
    const a = await TestClient.connect(node, 'bob');
    const b = await TestClient.connect(node, 'bob');
    try {
      const [wa, wb] = [a.frames[0]!, b.frames[0]!];
      assert.equal(wa.user, 'bob');
      assert.equal(wb.user, 'bob');
      assert.notEqual(wa.session, wb.session);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('allowed origins', () => {
  const ALLOWED = 'https://app.example.com';
  let node: TestNode;
  before(async () => (node = await startNode({ allowedOrigins: [ALLOWED, 'http://localhost:3000'] })));
  after(() => node.stop());

  it('accepts a listed origin', async () => {
    for (const origin of [ALLOWED, 'http://localhost:3000']) {
      const { client, welcome } = await connectWith(node, 'alice', { origin });
      assert.equal(welcome.user, 'alice');
      await client.close();
    }
  });

  it('refuses an unlisted origin with HTTP 403 before the upgrade', async () => {
    const refused = await refusedUpgrade(await wsUrlFor(node, 'alice'), { origin: 'https://evil.example' });
    assert.deepEqual(refused, { status: 403, body: { error: { code: 'forbidden', message: 'origin not allowed' } } });
  });

  it('refuses the origin "null" (sandboxed frames, file:// pages)', async () => {
    const refused = await refusedUpgrade(await wsUrlFor(node, 'alice'), { origin: 'null' });
    assert.equal(refused.status, 403);
  });

  it('refuses look-alike origins: suffix, prefix, other scheme, other port', async () => {
    const lookAlikes = [
      'https://app.example.com.evil.io',
      'https://app.example.co',
      'https://evilapp.example.com',
      'http://app.example.com',
      'https://app.example.com:8443',
      'https://localhost:3000',
      'http://localhost:30000',
    ];
    const url = await wsUrlFor(node, 'alice');
    for (const origin of lookAlikes) {
      const refused = await refusedUpgrade(url, { origin });
      assert.equal(refused.status, 403, `origin ${origin}`);
    }
  });

  it('checks the origin before the token: a bad origin without a token still gets 403, not 4001', async () => {
    const refused = await refusedUpgrade(node.wsUrl, { origin: 'https://evil.example' });
    assert.equal(refused.status, 403);
  });

  it('accepts a request without an Origin header (non-browser client)', async () => {
    // The ws client sends no Origin unless told to.
    const { client, welcome } = await connectWith(node, 'bot', {});
    assert.equal(welcome.user, 'bot');
    await client.close();
  });
});

describe('WebSocket path', () => {
  let node: TestNode;
  let custom: TestNode;
  before(async () => ([node, custom] = await Promise.all([startNode(), startNode({ wsPath: '/monitor-socket/webSocket' })])));
  after(() => Promise.all([node.stop(), custom.stop()]));

  it('answers an upgrade on another path with HTTP 404', async () => {
    const tok = await token('alice');
    for (const path of ['/', '/wss', '/ws/extra', '/WS', '/v1/publish']) {
      const refused = await refusedUpgrade(`${node.url}${path}?token=${tok}`.replace(/^http/, 'ws'));
      assert.equal(refused.status, 404, `path ${path}`);
      assert.equal(refused.body.error?.code, 'not_found', `path ${path}`);
    }
  });

  it('serves the configured path and nothing at /ws', async () => {
    assert.equal(custom.wsUrl, custom.url.replace(/^http/, 'ws') + '/monitor-socket/webSocket');
    const client = await TestClient.connect(custom, 'alice');
    await client.close();
    const refused = await refusedUpgrade(`${custom.url.replace(/^http/, 'ws')}/ws?token=${await token('alice')}`);
    assert.equal(refused.status, 404);
  });
});

describe('connection limits', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ maxConnections: 3, maxConnectionsPerUser: 2 })));
  after(() => node.stop());

  /** Sessions for every one of `users`, tried again (all or none) until the node admits them all. */
  function fillUp(users: string[], message: string, timeoutMs?: number): Promise<TestClient[]> {
    return eventually(
      async () => {
        const opened: TestClient[] = [];
        try {
          for (const user of users) opened.push(await TestClient.connect(node, user));
          return opened;
        } catch (err) {
          for (const c of opened) c.ws.terminate();
          throw err;
        }
      },
      { intervalMs: 50, message, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
    );
  }

  it('closes a user session past maxConnectionsPerUser with 1008 and no welcome', async () => {
    const first = await TestClient.connect(node, 'alice');
    const second = await TestClient.connect(node, 'alice');
    const extra = new TestClient(await wsUrlFor(node, 'alice'));
    try {
      await extra.opened;
      assert.deepEqual(await extra.waitClose(), { code: 1008, reason: 'too many connections for this user (max 2)' });
      assert.deepEqual(extra.frames, []);
      // The sessions already open are untouched.
      for (const c of [first, second]) {
        c.send({ type: 'ping' });
        assert.equal((await c.next((f) => f.type === 'pong')).type, 'pong');
        assert.equal(c.closeCode, undefined);
      }
    } finally {
      extra.ws.terminate();
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('answers upgrades with HTTP 503 once the node holds maxConnections sessions, and admits again after one leaves', async () => {
    // Earlier sessions may still be going away on the server side; wait until three fit.
    const clients = await fillUp(['u1', 'u2', 'u3'], 'three sessions to fit under maxConnections');
    try {
      const refused = await refusedUpgrade(await wsUrlFor(node, 'u4'));
      assert.deepEqual(refused, { status: 503, body: { error: { code: 'unavailable', message: 'node at its connection limit' } } });
      await clients.pop()!.close();
      const again = await eventually(() => TestClient.connect(node, 'u4'), {
        intervalMs: 50,
        message: 'a session to be admitted once one left',
      });
      clients.push(again);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  });

  it('gives back the place of an upgrade that ws refuses as malformed, so the limit still admits users', async () => {
    const { port } = new URL(node.url);
    // More malformed upgrades than maxConnections: each passes the node's own checks (path, limit),
    // then ws answers 400 for the bad key without ever handing over a socket.
    for (let i = 0; i < 5; i++) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = tcpConnect(Number(port), '127.0.0.1', () =>
          socket.write(
            'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n',
          ),
        );
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
        socket.on('error', reject);
      });
      assert.equal(answer, 'HTTP/1.1 400 Bad Request');
    }
    const clients = await fillUp(['v1', 'v2', 'v3'], 'maxConnections sessions admitted after the malformed upgrades', 3000);
    await Promise.all(clients.map((c) => c.close()));
  });
});

describe('handshake timeout', () => {
  const HANDSHAKE_MS = 500;
  let node: TestNode;
  before(async () => (node = await startNode({ handshakeTimeoutMs: HANDSHAKE_MS })));
  after(() => node.stop());

  it('closes a TCP connection that sends a partial upgrade request and stalls', async () => {
    const { port } = new URL(node.url);
    const socket = tcpConnect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    try {
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const started = Date.now();
      // No blank line: the request headers never end.
      socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
      const closedAfter = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the server never closed the stalled connection')), HANDSHAKE_MS + 5000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve(Date.now() - started);
        });
      });
      assert.ok(closedAfter >= HANDSHAKE_MS - 100, `closed after ${closedAfter} ms, before the ${HANDSHAKE_MS} ms timeout`);
      assert.ok(closedAfter <= HANDSHAKE_MS + 1500, `closed only after ${closedAfter} ms`);
    } finally {
      socket.destroy();
    }
  });

  it('does not apply the handshake timeout to an upgraded session', async () => {
    const client = await TestClient.connect(node, 'alice');
    try {
      await sleep(HANDSHAKE_MS * 3);
      client.send({ type: 'ping' });
      await client.next((f) => f.type === 'pong');
      assert.equal(client.closeCode, undefined);
    } finally {
      await client.close();
    }
  });
});

describe('permessage-deflate', () => {
  let plain: TestNode;
  let deflate: TestNode;
  before(async () => ([plain, deflate] = await Promise.all([startNode(), startNode({ perMessageDeflate: true })])));
  after(() => Promise.all([plain.stop(), deflate.stop()]));

  it('is not negotiated by default, even when the client offers it', async () => {
    const { client } = await connectWith(plain, 'alice', { perMessageDeflate: true });
    try {
      assert.equal(client.ws.extensions, '');
    } finally {
      await client.close();
    }
  });

  it('is negotiated when the node runs with perMessageDeflate: true', async () => {
    const { client } = await connectWith(deflate, 'alice', { perMessageDeflate: true });
    try {
      assert.equal(client.ws.extensions, 'permessage-deflate');
      // Compressed frames still carry the protocol both ways.
      const reply = await client.request({ type: 'send', to: 'alice', topic: 'chat', data: { text: 'x'.repeat(2000) } });
      assert.equal(reply.ok, true);
      const msg = await client.next((f) => f.type === 'message');
      assert.equal(msg.data.text, 'x'.repeat(2000));
    } finally {
      await client.close();
    }
  });

  it('still admits a client that does not offer it on a compressing node', async () => {
    const { client } = await connectWith(deflate, 'bob', { perMessageDeflate: false });
    try {
      assert.equal(client.ws.extensions, '');
    } finally {
      await client.close();
    }
  });
});

describe('draining', () => {
  let node: TestNode;
  // All at once: the spread of the closes is tested in operations.test.ts.
  before(async () => (node = await startNode({ drainTimeoutMs: 10_000, drainSpreadMs: 0 })));
  after(() => node.stop());

  it('closes sessions with 1001, refuses new upgrades with 503 and turns /readyz 503', async () => {
    const alice = await TestClient.connect(node, 'alice');
    // A client that stops reading cannot answer the close, which keeps the drain (and its window) open.
    const holder = await TestClient.connect(node, 'holder');
    const url = await wsUrlFor(node, 'carol');
    try {
      assert.equal((await api(node, 'GET', '/readyz')).status, 200);
      holder.ws.pause();

      const drained = node.node.drain();
      drained.catch(() => undefined);

      assert.deepEqual(await alice.waitClose(), { code: 1001, reason: 'node draining' });
      assert.deepEqual(
        alice.frames.map((f) => f.type),
        ['welcome'],
      );

      const refused = await refusedUpgrade(url);
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error?.code, 'unavailable');

      const ready = await api(node, 'GET', '/readyz', undefined, null);
      assert.deepEqual(ready, { status: 503, body: { status: 'draining', node: 'n-test', connections: 0 } });

      holder.ws.resume();
      assert.equal((await holder.waitClose()).code, 1001);
      await drained;
    } finally {
      alice.ws.terminate();
      holder.ws.terminate();
    }
  });
});
