/**
 * The HTTP API of PROTOCOL.md ("HTTP API"): every route with the API key, its error cases
 * (`{"error":{code,message}}` with the fitting status), and the health, readiness and metrics
 * endpoints.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { API_KEY, TestClient, api, startNode, token, type Frame, type TestNode, nodeFixture } from './helpers.js';
import { eventually } from './support/eventually.js';

/** Asserts an error response: status and `{error:{code, message}}` with a non-empty message. */
function assertError(res: { status: number; body: Frame }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error?.code, code, JSON.stringify(res.body));
  assert.equal(typeof res.body.error.message, 'string');
  assert.ok(res.body.error.message.length > 0);
}

/** Sends a chunked body (no content-length), so the size limit must be enforced while reading. */
function postChunked(node: TestNode, path: string, chunks: string[]): Promise<{ status: number; body: Frame }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      node.url + path,
      { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Frame }));
      },
    );
    req.on('error', reject);
    // The server may answer (and stop reading) before every chunk is written.
    for (const chunk of chunks) req.write(chunk, () => undefined);
    req.end();
  });
}

describe('HTTP API', () => {
  const fixture = nodeFixture();
  let node: TestNode;
  before(() => (node = fixture.node));
  const connect = (user: string, claims: Record<string, unknown> = {}) => fixture.connect(user, claims);

  describe('API key', () => {
    const routes: [string, string, unknown?][] = [
      ['POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: {} }],
      ['GET', '/v1/presence/group:ops'],
      ['GET', '/v1/users/alice'],
      ['GET', '/v1/users'],
      ['GET', '/v1/history/group:ops'],
      ['POST', '/v1/disconnect', { user: 'alice' }],
      ['GET', '/v1/nodes'],
      ['GET', '/v1/route?user=alice'],
      ['GET', '/v1/no-such-route'],
    ];

    for (const [method, path, body] of routes) {
      it(`answers 401 unauthorized to ${method} ${path} without a key or with a wrong one`, async () => {
        assertError(await api(node, method, path, body, null), 401, 'unauthorized');
        assertError(await api(node, method, path, body, 'wrong-key-0123456789'), 401, 'unauthorized');
      });
    }

    it('rejects a key sent with another scheme than Bearer', async () => {
      const res = await fetch(`${node.url}/v1/nodes`, { headers: { authorization: `Basic ${API_KEY}` } });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as Frame).error.code, 'unauthorized');
    });

    it('publishes nothing when the key is wrong', async () => {
      const before = await api(node, 'GET', '/v1/history/group:keyless');
      assertError(
        await api(node, 'POST', '/v1/publish', { channel: 'group:keyless', topic: 't', data: {} }, 'nope-nope-nope-nope'),
        401,
        'unauthorized',
      );
      const after = await api(node, 'GET', '/v1/history/group:keyless');
      assert.equal(after.body.offset, before.body.offset);
      assert.deepEqual(after.body.messages, []);
    });

    it('does not need the key for /healthz, /readyz and /metrics', async () => {
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        assert.equal((await api(node, 'GET', path, undefined, null)).status, 200, path);
      }
    });
  });

  describe('POST /v1/publish', () => {
    it('answers {epoch, offset} and delivers the message to the subscriber', async () => {
      const bob = await connect('bob', { groups: ['ops'] });
      const res = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 'alert', data: { level: 2 } });
      assert.equal(res.status, 200);
      assert.equal(typeof res.body.epoch, 'string');
      assert.equal(res.body.offset, 1);
      const msg = await bob.next((f) => f.type === 'message' && f.channel === 'group:ops');
      assert.equal(typeof msg.ts, 'number');
      assert.deepEqual(msg, {
        type: 'message',
        channel: 'group:ops',
        epoch: res.body.epoch,
        offset: 1,
        from: null,
        topic: 'alert',
        data: { level: 2 },
        ts: msg.ts,
      });

      const second = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 'alert', data: null, from: 'monitor' });
      assert.deepEqual({ epoch: second.body.epoch, offset: second.body.offset }, { epoch: res.body.epoch, offset: 2 });
      const msg2 = await bob.next((f) => f.type === 'message' && f.channel === 'group:ops');
      assert.equal(msg2.from, 'monitor', 'the API may state the sender');
    });

    it('reaches every session through broadcast and a user through user:<id>', async () => {
      const carol = await connect('carol');
      const dave = await connect('dave');
      const res = await api(node, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'notice', data: 'hello all' });
      assert.equal(res.status, 200);
      await carol.next((f) => f.type === 'message' && f.channel === 'broadcast' && f.data === 'hello all');
      await dave.next((f) => f.type === 'message' && f.channel === 'broadcast' && f.data === 'hello all');
      await api(node, 'POST', '/v1/publish', { channel: 'user:carol', topic: 'dm', data: 'just you' });
      await carol.next((f) => f.type === 'message' && f.channel === 'user:carol' && f.data === 'just you');
      // A marker for dave, published after: the memory broker delivers in publish order across
      // channels, so had dave been sent carol's message, it would have reached him first.
      await api(node, 'POST', '/v1/publish', { channel: 'user:dave', topic: 'marker', data: 'marker' });
      await dave.next((f) => f.type === 'message' && f.channel === 'user:dave' && f.data === 'marker');
      assert.deepEqual(dave.messages('user:carol'), []);
    });

    for (const channel of ['ops', 'group:', 'user:a b', 'topic:x', '', 42]) {
      it(`answers 400 bad_frame for the channel ${JSON.stringify(channel)}`, async () => {
        assertError(await api(node, 'POST', '/v1/publish', { channel, topic: 't', data: {} }), 400, 'bad_frame');
      });
    }

    it('answers 400 bad_frame for a missing channel, a missing or empty topic and a bad from', async () => {
      assertError(await api(node, 'POST', '/v1/publish', { topic: 't', data: {} }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:ops', data: {} }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: '', data: {} }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 7, data: {} }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', from: 'a b' }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', from: 5 }), 400, 'bad_frame');
    });

    it('answers 400 bad_frame for a body that is not JSON or not an object', async () => {
      assertError(await api(node, 'POST', '/v1/publish', '{"channel":"group:ops",'), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', ''), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', '[1,2]'), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/publish', 'null'), 400, 'bad_frame');
    });

    it('answers 413 too_large for a body over maxPayloadBytes, declared or streamed', async () => {
      const big = 'x'.repeat(node.node.options.maxPayloadBytes + 1);
      assertError(await api(node, 'POST', '/v1/publish', { channel: 'group:big', topic: 't', data: big }), 413, 'too_large');
      const chunk = 'x'.repeat(16 * 1024);
      const chunks = ['{"channel":"group:big","topic":"t","data":"', ...Array.from({ length: 6 }, () => chunk), '"}'];
      assertError(await postChunked(node, '/v1/publish', chunks), 413, 'too_large');
    });

    it('publishes nothing when it answers an error', async () => {
      await api(node, 'POST', '/v1/publish', { channel: 'group:rejects', topic: 'ok', data: 1 });
      await api(node, 'POST', '/v1/publish', { channel: 'group:rejects', data: 2 });
      await api(node, 'POST', '/v1/publish', { channel: 'group:rejects', topic: 't', data: 'x'.repeat(70_000) });
      const history = await api(node, 'GET', '/v1/history/group:rejects');
      assert.equal(history.body.offset, 1);
      assert.deepEqual(
        history.body.messages.map((m: Frame) => m.data),
        [1],
      );
    });

    it('answers 404 not_found for another method on the route', async () => {
      assertError(await api(node, 'GET', '/v1/publish'), 404, 'not_found');
      assertError(await api(node, 'PUT', '/v1/publish', { channel: 'group:ops', topic: 't' }), 404, 'not_found');
    });
  });

  describe('GET /v1/history/{channel}', () => {
    let epoch = '';
    before(async () => {
      for (let i = 1; i <= 10; i++)
        epoch = (await api(node, 'POST', '/v1/publish', { channel: 'group:hist', topic: 'n', data: { i }, from: 'svc' })).body
          .epoch as string;
    });

    it('returns the offsets after since, oldest first, at most limit', async () => {
      const res = await api(node, 'GET', '/v1/history/group:hist?since=3&limit=4');
      assert.equal(res.status, 200);
      assert.equal(res.body.epoch, epoch);
      assert.deepEqual(
        res.body.messages.map((m: Frame) => m.offset),
        [4, 5, 6, 7],
      );
      const first = res.body.messages[0] as Frame;
      assert.deepEqual(first, {
        type: 'message',
        channel: 'group:hist',
        epoch,
        offset: 4,
        from: 'svc',
        topic: 'n',
        data: { i: 4 },
        ts: first.ts,
      });
    });

    it('accepts a URL-encoded channel', async () => {
      const plain = await api(node, 'GET', '/v1/history/group:hist?since=3&limit=4');
      const encoded = await api(node, 'GET', '/v1/history/group%3Ahist?since=3&limit=4');
      assert.equal(encoded.status, 200);
      assert.deepEqual(encoded.body, plain.body);
    });

    it('returns everything kept without since and limit, and nothing after the latest offset', async () => {
      const all = await api(node, 'GET', '/v1/history/group:hist');
      assert.deepEqual(
        all.body.messages.map((m: Frame) => m.offset),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      const none = await api(node, 'GET', '/v1/history/group:hist?since=10');
      assert.equal(none.status, 200);
      assert.deepEqual(none.body.messages, []);
      const zero = await api(node, 'GET', '/v1/history/group:hist?since=0&limit=0');
      assert.deepEqual(zero.body.messages, []);
      const tail = await api(node, 'GET', '/v1/history/group:hist?since=8&limit=100');
      assert.deepEqual(
        tail.body.messages.map((m: Frame) => m.offset),
        [9, 10],
      );
    });

    it('answers an empty page for a channel nothing was published to', async () => {
      const res = await api(node, 'GET', '/v1/history/user:nobody');
      assert.equal(res.status, 200);
      assert.equal(typeof res.body.epoch, 'string');
      assert.deepEqual(res.body.messages, []);
    });

    it('answers 400 bad_frame for a bad channel, since or limit', async () => {
      assertError(await api(node, 'GET', '/v1/history/nope'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/history/group:hist?since=-1'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/history/group:hist?since=abc'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/history/group:hist?limit=1.5'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/history/group%ZZ'), 400, 'bad_frame');
    });
  });

  describe('POST /v1/disconnect', () => {
    it('closes every session of the user with 4003 and leaves the others connected', async () => {
      const tab1 = await connect('mallory');
      const tab2 = await connect('mallory');
      // trent listens on mallory's personal channel, where the disconnect travels: he must stay.
      const bystander = await connect('trent', { channels: ['user:mallory'] });
      assert.equal((await bystander.request({ type: 'subscribe', channel: 'user:mallory' })).ok, true);
      const res = await api(node, 'POST', '/v1/disconnect', { user: 'mallory' });
      assert.equal(res.status, 200);
      assert.equal(res.body.user, 'mallory');
      assert.equal((await tab1.waitClose()).code, 4003);
      assert.equal((await tab2.waitClose()).code, 4003);
      // The disconnect reached every session on user:mallory before the reply above; had it closed
      // trent too, his close would come before the answer to this ping.
      assert.equal((await bystander.request({ type: 'ping' })).ok, true);
      assert.equal(bystander.closeCode, undefined);
    });

    it('answers 200 for a user with no session', async () => {
      const res = await api(node, 'POST', '/v1/disconnect', { user: 'nobody-online' });
      assert.equal(res.status, 200);
    });

    it('answers 400 bad_frame without a valid user', async () => {
      assertError(await api(node, 'POST', '/v1/disconnect', {}), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/disconnect', { user: 'a b' }), 400, 'bad_frame');
      assertError(await api(node, 'POST', '/v1/disconnect', 'not json'), 400, 'bad_frame');
    });
  });

  describe('GET /v1/presence/{channel} and /v1/users/{id}', () => {
    it('answers 400 bad_frame for broadcast, a bad channel and a bad user id', async () => {
      assertError(await api(node, 'GET', '/v1/presence/broadcast'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/presence/nope'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/users/a%20b'), 400, 'bad_frame');
    });
  });

  describe('GET /v1/nodes and /v1/route', () => {
    it('lists this node with its url and connections', async () => {
      const res = await api(node, 'GET', '/v1/nodes');
      assert.equal(res.status, 200);
      const self = (res.body.nodes as Frame[]).find((n) => n.node === 'n-test');
      assert.ok(self, JSON.stringify(res.body));
      assert.equal(self.url, node.url);
      assert.ok(Number.isInteger(self.connections) && self.connections >= 0, `connections ${self.connections}`);
    });

    it('routes a user to this node', async () => {
      const res = await api(node, 'GET', '/v1/route?user=alice');
      assert.equal(res.status, 200);
      assert.equal(res.body.node, 'n-test');
      assert.equal(res.body.url, node.url);
    });

    it('answers 400 bad_frame for a route query without a valid user', async () => {
      assertError(await api(node, 'GET', '/v1/route'), 400, 'bad_frame');
      assertError(await api(node, 'GET', '/v1/route?user=a%20b'), 400, 'bad_frame');
    });
  });

  describe('unknown routes', () => {
    for (const [method, path] of [
      ['GET', '/v1/nope'],
      ['GET', '/v1/history'],
      ['GET', '/v1/history/group:ops/extra'],
      ['DELETE', '/v1/nodes'],
      ['GET', '/nope'],
    ] as const) {
      it(`answers 404 not_found to ${method} ${path}`, async () => {
        assertError(await api(node, method, path), 404, 'not_found');
      });
    }
  });

  describe('health and metrics', () => {
    it('answers 200 on /healthz and /readyz, with the node id and, on /readyz, the open connections', async () => {
      // A node of its own, so that `connections` is known exactly (the fixture's node keeps the
      // other tests' sessions open). The gateway probes without a key and reads `node` and `connections`.
      const own = await startNode({ nodeId: 'n-health' });
      const readyz = async () => {
        const res = await api(own, 'GET', '/readyz', undefined, null);
        return { status: res.status, body: res.body };
      };
      let client: TestClient | undefined;
      try {
        const health = await api(own, 'GET', '/healthz', undefined, null);
        assert.deepEqual({ status: health.status, body: health.body }, { status: 200, body: { status: 'ok', node: 'n-health' } });
        assert.deepEqual(await readyz(), { status: 200, body: { status: 'ready', node: 'n-health', connections: 0 } });

        client = await TestClient.connect(own, 'health-user');
        assert.deepEqual(
          await readyz(),
          { status: 200, body: { status: 'ready', node: 'n-health', connections: 1 } },
          'an open WebSocket is counted',
        );

        await client.close();
        await eventually(
          async () => assert.deepEqual(await readyz(), { status: 200, body: { status: 'ready', node: 'n-health', connections: 0 } }),
          {
            message: 'the closed WebSocket to leave the count',
          },
        );
      } finally {
        await client?.close();
        await own.stop();
      }
    });

    it('serves Prometheus text with switchboard_sessions counting open sessions', async () => {
      const sessions = async (): Promise<number> => {
        const res = await fetch(`${node.url}/metrics`);
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
        const text = await res.text();
        assert.match(text, /^# TYPE switchboard_sessions gauge$/m);
        const line = /^switchboard_sessions\{[^}]*node="n-test"[^}]*\} (\d+)$/m.exec(text);
        assert.ok(line, 'a switchboard_sessions sample labelled with the node');
        return Number(line[1]);
      };
      const before = await sessions();
      const extra = await connect('metrics-user');
      assert.equal(await sessions(), before + 1);
      await extra.close();
      await eventually(async () => assert.equal(await sessions(), before, 'a closed session is no longer counted'), {
        message: 'switchboard_sessions to drop the closed session',
      });
    });
  });
});

describe('HTTP API without a configured key', () => {
  let node: TestNode;
  before(async () => (node = await startNode({ apiKey: undefined })));
  after(() => node.stop());

  it('answers 401 unauthorized to every /v1 call, whatever key is sent', async () => {
    for (const key of [API_KEY, null, '']) {
      const res = await api(node, 'GET', '/v1/nodes', undefined, key);
      assertError(res, 401, 'unauthorized');
    }
    const pub = await api(node, 'POST', '/v1/publish', { channel: 'group:ops', topic: 't', data: {} });
    assertError(pub, 401, 'unauthorized');
    assert.match(pub.body.error.message, /SWITCHBOARD_API_KEY/);
  });

  it('still serves /healthz', async () => {
    assert.equal((await api(node, 'GET', '/healthz')).status, 200);
  });
});

describe('/readyz while draining', () => {
  let node: TestNode;
  let raw: Socket | undefined;
  before(async () => (node = await startNode({ drainTimeoutMs: 5000 })));
  after(async () => {
    raw?.destroy();
    await node.stop();
  });

  it('answers 200, then 503 as soon as the node drains, and refuses new upgrades with 503', async () => {
    assert.equal((await api(node, 'GET', '/readyz')).status, 200);

    // A peer that never answers the close handshake keeps the drain going while we look.
    const { port } = new URL(node.url);
    raw = tcpConnect(Number(port), '127.0.0.1');
    const socket = raw;
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write(
      `GET /ws?token=${await token('lingerer')} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await eventually(() => assert.match(received, /"welcome"/), { intervalMs: 10, message: 'the welcome on the raw socket' });
    assert.match(received, /^HTTP\/1\.1 101/);

    const drained = node.node.drain();
    try {
      const res = await api(node, 'GET', '/readyz');
      assert.equal(res.status, 503);
      assert.equal(res.body.status, 'draining');
      assert.equal((await api(node, 'GET', '/healthz')).status, 200, 'still alive while draining');
      const late = new TestClient(`${node.wsUrl}?token=${await token('late')}`);
      await assert.rejects(late.opened, (err: Error & { status?: number }) => err.status === 503);
    } finally {
      socket.destroy();
      await drained;
    }
  });
});
