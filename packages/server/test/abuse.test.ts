/**
 * Abuse (issue 15, S2–S4): a node, and a gateway in front of it, attacked with real sockets —
 * WebSocket frames built byte by byte here (RFC 6455 §5), hostile upgrade requests, slowloris and
 * origin tricks. Each attack checks what a user would: the attacker gets a clear refusal (an HTTP
 * status, a close code, an error frame), heap and event loop stay fine, and two bystanders
 * connected the whole time (one on the node, one through the gateway) receive every message
 * published to them meanwhile, each once and in order.
 *
 * Covered elsewhere and not repeated here:
 * - an oversized single frame (1009), frame rate (`rate_limited`, then 4029 with a bystander's
 *   ping answered), the slow consumer (4008): limits.test.ts;
 * - invalid UTF-8 in a whole text frame (1007) and binary frames (answered `bad_frame`, as
 *   protocol.md §3 says): fuzz.test.ts, "fuzzing the frame path";
 * - a single stalled upgrade request cut by `handshakeTimeoutMs`: connect.test.ts, "handshake
 *   timeout"; an upgraded peer that then sends nothing and answers no ping: limits.test.ts,
 *   "limit: heartbeat (heartbeatIntervalMs)" › "drops a peer that does not answer pings …";
 * - the node's origin check for "null", an allowed origin as a prefix or a suffix of another host,
 *   another scheme and another port: connect.test.ts, "allowed origins" (the gateway runs them here).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gateway, gatewayOptions, resolveOptions } from '../src/index.js';
import { MemoryRegistry } from '../src/registry/memory-registry.js';
import { API_KEY, SECRET, TestClient, api, sleep, token, type Frame, type TestNode } from './helpers.js';
import { InProcessCluster } from './cluster/in-process.js';
import { eventually } from './support/eventually.js';

/** Long enough to trickle a few bytes in, short enough for a quick test. */
const HANDSHAKE_MS = 2500;
const MAX_PAYLOAD = 4096;
const ALLOWED_ORIGINS = ['https://allowed.example', 'http://localhost:3000'];
/** Generous: the machine is shared and busy; a healthy answer takes milliseconds. */
const WAIT = { timeoutMs: 10_000, intervalMs: 10 };
const FORBIDDEN_ORIGIN = { error: { code: 'forbidden', message: 'origin not allowed' } };

// ---- WebSocket frames, by hand ---------------------------------------------------------------------

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One client-to-server frame (RFC 6455 §5.2): masked as a client must, unless `mask: false`. */
function wsFrame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; mask?: boolean; rsv?: number } = {}): Buffer {
  const data = Buffer.from(payload);
  const masked = opts.mask ?? true;
  const maskBit = masked ? 0x80 : 0;
  let head: Buffer;
  if (data.length < 126) head = Buffer.from([0, maskBit | data.length]);
  else if (data.length < 65_536) {
    head = Buffer.alloc(4);
    head[1] = maskBit | 126;
    head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = maskBit | 127;
    head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  head[0] = ((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode;
  if (!masked) return Buffer.concat([head, data]);
  const key = randomBytes(4);
  for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ key[i % 4]!;
  return Buffer.concat([head, key, data]);
}

/** A text message cut into `count` fragments at byte boundaries (multi-byte characters split too). */
function fragments(text: string | Buffer, count: number): Buffer[] {
  const bytes = Buffer.from(text);
  const size = Math.ceil(bytes.length / count);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = bytes.subarray(i * size, (i + 1) * size);
    out.push(wsFrame(i === 0 ? OP.text : OP.continuation, chunk, { fin: i === count - 1 }));
  }
  return out;
}

/** A frame the server sent (never masked). */
interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** An upgrade request; `before` header lines go ahead of the WebSocket ones, `after` behind them. */
function upgradeRequest(query: string, lines: { before?: string[]; after?: string[] } = {}): string {
  return [
    `GET /ws${query} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    ...(lines.before ?? []),
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...(lines.after ?? []),
    '',
    '',
  ].join('\r\n');
}

/**
 * A TCP client that writes whatever it is given and reads an HTTP response head and then, after a
 * 101, WebSocket frames. It never closes the connection itself unless told to, so a close is the
 * server's.
 */
class RawClient {
  readonly frames: ServerFrame[] = [];
  head: string | undefined;
  body = Buffer.alloc(0);
  tcpClosed = false;
  private pending = Buffer.alloc(0);

  private constructor(readonly socket: Socket) {
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => (this.tcpClosed = true));
  }

  /** Connects to `target` and writes `request` (or nothing yet). */
  static async open(target: { url: string }, request?: string | Buffer): Promise<RawClient> {
    const { hostname, port } = new URL(target.url);
    const socket = tcpConnect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new RawClient(socket);
    if (request !== undefined) socket.write(request);
    return client;
  }

  /** Opens a WebSocket session as `user` and waits for `welcome`. */
  static async session(target: { url: string }, user: string): Promise<RawClient> {
    const client = await RawClient.open(target, upgradeRequest(`?token=${await token(user)}`));
    await client.next((f) => f.type === 'welcome');
    return client;
  }

  /** The response status, once the head is in; 0 when the server closed without answering. */
  async status(): Promise<number> {
    await eventually(() => this.head !== undefined || this.tcpClosed, { ...WAIT, message: 'an HTTP response or a close' });
    return this.head === undefined ? 0 : Number(/^HTTP\/1\.1 (\d{3})/.exec(this.head)?.[1] ?? -1);
  }

  /** Text frames parsed as JSON. */
  texts(): Frame[] {
    return this.frames.filter((f) => f.opcode === OP.text).map((f) => JSON.parse(f.payload.toString('utf8')) as Frame);
  }

  /** The first text frame matching `pred`. */
  async next(pred: (f: Frame) => boolean): Promise<Frame> {
    return eventually(
      () => {
        const found = this.texts().find(pred);
        if (found) return found;
        throw new Error(`not yet; got ${JSON.stringify(this.texts()).slice(0, 400)}${this.tcpClosed ? ' (closed)' : ''}`);
      },
      { ...WAIT, message: 'a matching text frame' },
    );
  }

  /** The code of the server's close frame (1005 when it had none), once the server has also ended TCP. */
  async closeCode(): Promise<number> {
    return eventually(
      () => {
        const close = this.frames.find((f) => f.opcode === OP.close);
        if (!close || !this.tcpClosed) throw new Error(`close frame: ${close ? 'yes' : 'no'}, TCP closed: ${this.tcpClosed}`);
        return close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005;
      },
      { ...WAIT, message: 'the server to send a close frame and end the connection' },
    );
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.head === undefined) {
      const all = Buffer.concat([this.body, chunk]);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return void (this.body = all);
      this.head = all.subarray(0, end).toString('latin1');
      this.body = Buffer.alloc(0);
      chunk = all.subarray(end + 4);
    }
    if (!this.head.startsWith('HTTP/1.1 101')) return void (this.body = Buffer.concat([this.body, chunk]));
    this.pending = Buffer.concat([this.pending, chunk]);
    for (;;) {
      const p = this.pending;
      if (p.length < 2) return;
      let length = p[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (p.length < 4) return;
        length = p.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (p.length < 10) return;
        length = Number(p.readBigUInt64BE(2));
        offset = 10;
      }
      if (p.length < offset + length) return;
      const frame = { opcode: p[0]! & 0x0f, payload: p.subarray(offset, offset + length) };
      this.frames.push(frame);
      this.pending = p.subarray(offset + length);
      // Answer a close as a client does (RFC 6455 §5.5.1), so that the server ends the connection.
      if (frame.opcode === OP.close && !this.socket.destroyed) this.socket.write(wsFrame(OP.close, frame.payload.subarray(0, 2)));
    }
  }
}

// ---- the bystanders and the vital signs ------------------------------------------------------------

/** A session connected the whole time; `publish` sends it the next numbered message over HTTP. */
class Bystander {
  private sent = 0;
  constructor(
    readonly client: TestClient,
    private readonly via: TestNode,
    readonly user: string,
  ) {}

  async publish(): Promise<void> {
    const seq = ++this.sent;
    const res = await api(this.via, 'POST', '/v1/publish', { channel: `user:${this.user}`, topic: 'tick', data: seq });
    assert.equal(res.status, 200, `publishing tick ${seq} to ${this.user}: ${JSON.stringify(res.body)}`);
  }

  /** Every message published to it arrived, each once, in order, and the session is still open. */
  async assertGotAll(): Promise<void> {
    const ticks = await eventually(
      () => {
        const got = this.client.messages(`user:${this.user}`).filter((m) => m.topic === 'tick');
        if (got.length < this.sent) throw new Error(`${got.length} of ${this.sent} ticks`);
        return got;
      },
      { ...WAIT, message: `${this.user} to receive every tick` },
    );
    assert.deepEqual(
      ticks.map((m) => m.data),
      Array.from({ length: this.sent }, (_, i) => i + 1),
      `${this.user} got each message once, in order`,
    );
    assert.equal(this.client.closeCode, undefined, `${this.user} is still connected`);
  }
}

/** Heap and event-loop delay of this process (node, gateway and attackers) over an attack. */
class VitalSigns {
  private readonly delay = monitorEventLoopDelay({ resolution: 10 });
  private readonly heapBefore = process.memoryUsage().heapUsed;
  private heapPeak = this.heapBefore;
  private readonly sampler = setInterval(() => (this.heapPeak = Math.max(this.heapPeak, process.memoryUsage().heapUsed)), 20);

  constructor() {
    this.delay.enable();
    this.sampler.unref();
  }

  stop(): void {
    clearInterval(this.sampler);
    this.delay.disable();
  }

  /** Asserts the loop never stalled for seconds and the heap did not balloon (after `stop`). */
  assertFine(what: string): void {
    const maxMs = this.delay.max / 1e6;
    const growthMb = (this.heapPeak - this.heapBefore) / 2 ** 20;
    // Bounds far above a healthy run (a few ms, a few MB) so a busy machine does not fail them; a
    // server buffering an attack or spinning on it would.
    assert.ok(maxMs < 3000, `${what}: the event loop stalled for ${maxMs.toFixed(0)} ms`);
    assert.ok(growthMb < 64, `${what}: the heap grew by ${growthMb.toFixed(1)} MB`);
  }
}

// ---- the system under attack -----------------------------------------------------------------------

describe('abuse: a node and a gateway under attack keep serving their bystanders', () => {
  const cluster = new InProcessCluster({ handshakeTimeoutMs: HANDSHAKE_MS, maxPayloadBytes: MAX_PAYLOAD, allowedOrigins: ALLOWED_ORIGINS });
  let node: TestNode;
  let gw: TestNode & { gateway: Gateway };
  let bystanders: Bystander[] = [];
  let baseline = 0;
  const raws: RawClient[] = [];
  const clients: TestClient[] = [];

  const targets = () => [
    { name: 'node', target: node },
    { name: 'gateway', target: gw },
  ];

  /** Runs `attack` while both bystanders get a message every 100 ms; then checks them and the vital signs. */
  async function underAttack<T>(what: string, attack: () => Promise<T>): Promise<T> {
    const vitals = new VitalSigns();
    let attacking = true;
    const ticker = (async () => {
      do {
        await Promise.all(bystanders.map((b) => b.publish()));
        await sleep(100);
      } while (attacking);
    })();
    let result: T;
    try {
      result = await attack();
    } finally {
      attacking = false;
      vitals.stop();
      await ticker;
    }
    vitals.assertFine(what);
    // One more after the attack, then every one must have arrived.
    await Promise.all(bystanders.map((b) => b.publish()));
    await Promise.all(bystanders.map((b) => b.assertGotAll()));
    await eventually(() => node.node.sessionCount === baseline, {
      ...WAIT,
      message: `the attackers' sessions to be released after ${what}`,
    });
    return result;
  }

  const open = async (target: { url: string }, request?: string | Buffer) => track(await RawClient.open(target, request));
  const session = async (target: { url: string }, user: string) => track(await RawClient.session(target, user));
  const track = (raw: RawClient) => (raws.push(raw), raw);

  before(async () => {
    node = await cluster.start('n1');
    const options = resolveOptions({
      port: 0,
      jwtSecret: SECRET,
      apiKey: API_KEY,
      nodeId: 'gw-abuse',
      logLevel: 'silent',
      handshakeTimeoutMs: HANDSHAKE_MS,
      maxPayloadBytes: MAX_PAYLOAD,
      allowedOrigins: ALLOWED_ORIGINS,
      gatewayProbeIntervalMs: 200,
    });
    const gateway = new Gateway(gatewayOptions(options), { registry: new MemoryRegistry(cluster.shared.roster) });
    const { url } = await gateway.start();
    gw = { gateway, url, wsUrl: `${url.replace(/^http/, 'ws')}/ws`, logs: [], stop: () => gateway.stop(), node: undefined as never };
    await eventually(() => gateway.health.live().length === 1, { ...WAIT, message: 'the gateway to see the node' });
    const onNode = await TestClient.connect(node, 'bystander-n');
    const viaGateway = await TestClient.connect(gw, 'bystander-g');
    clients.push(onNode, viaGateway);
    // The gateway's bystander is published to through the gateway's own /v1: normal HTTP there too.
    bystanders = [new Bystander(onNode, node, 'bystander-n'), new Bystander(viaGateway, gw, 'bystander-g')];
    baseline = node.node.sessionCount;
  });

  after(async () => {
    for (const raw of raws) raw.destroy();
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    await cluster.stop();
  });

  describe('S2: frames', () => {
    it('answers a flood of 10,000 small valid frames with rate_limited, then closes it 4029, on the node and through the gateway', async () => {
      await underAttack('the 10,000-frame floods', async () => {
        const flooders = await Promise.all(targets().map(({ name, target }) => session(target, `flooder-${name}`)));
        const flood = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => wsFrame(OP.text, `{"type":"ping","id":${i}}`)));
        for (const f of flooders) f.write(flood);
        for (const [i, f] of flooders.entries()) {
          const name = targets()[i]!.name;
          assert.equal(await f.closeCode(), 4029, `${name}: the flood is closed as rate limited`);
          const replies = f.texts().filter((t) => t.type === 'reply');
          const limited = replies.filter((r) => r.ok === false);
          assert.ok(limited.length > 0, `${name}: rate_limited replies came before the close`);
          for (const r of limited) assert.equal(r.error.code, 'rate_limited');
          assert.ok(replies.length < 10_000, `${name}: the flood was cut off, not served (${replies.length} replies)`);
        }
      });
    });

    it('handles a text message sent in 200 continuation fragments, a ping among them and characters split across them, as one frame', async () => {
      const user = 'fragmenter';
      const text = `fragmented: € 😀 ${'ü'.repeat(300)} end`;
      const message = JSON.stringify({ type: 'send', to: 'bystander-n', topic: 'fragmented', data: { text }, id: 'frag-1' });
      const [target] = bystanders;
      await underAttack('the fragmented message', async () => {
        const raw = await session(node, user);
        const parts = fragments(message, 200);
        // RFC 6455 §5.4: control frames may come between the fragments of a message.
        parts.splice(100, 0, wsFrame(OP.ping, 'in between'));
        raw.write(Buffer.concat(parts));
        const reply = await raw.next((f) => f.type === 'reply' && f.id === 'frag-1');
        assert.equal(reply.ok, true, JSON.stringify(reply));
        const pong = raw.frames.find((f) => f.opcode === OP.pong);
        assert.equal(pong?.payload.toString(), 'in between', 'the ping inside the message was answered');
        const msg = await target!.client.next((f) => f.type === 'message' && f.topic === 'fragmented');
        assert.deepEqual({ from: msg.from, data: msg.data }, { from: user, data: { text } });
        await sleep(50);
        assert.equal(raw.texts().filter((f) => f.type === 'reply').length, 1, 'one message, one reply');
        assert.equal(raw.tcpClosed, false);
        raw.destroy();
      });
    });

    it(`closes a fragmented message over maxPayloadBytes (${MAX_PAYLOAD}) with 1009 though each fragment is small, and publishes none of it`, async () => {
      await underAttack('the oversized fragmented message', async () => {
        const raw = await session(node, 'big-fragments');
        const message = JSON.stringify({ type: 'send', to: 'bystander-n', topic: 'oversized', data: 'x'.repeat(MAX_PAYLOAD * 2) });
        const parts = fragments(message, 100);
        assert.ok(
          parts.every((p) => p.length < 125),
          'every fragment is small',
        );
        raw.write(Buffer.concat(parts));
        assert.equal(await raw.closeCode(), 1009);
      });
      assert.deepEqual(
        bystanders[0]!.client.messages().filter((m) => m.topic === 'oversized'),
        [],
      );
    });

    const violations: { name: string; frames: () => Buffer[]; code: 1002 | 1007 }[] = [
      { name: 'a continuation frame without a start', frames: () => [wsFrame(OP.continuation, '{"type":"ping"}')], code: 1002 },
      {
        name: 'a ping of 126 bytes (control frames carry at most 125)',
        frames: () => [wsFrame(OP.ping, Buffer.alloc(126, 0x61))],
        code: 1002,
      },
      { name: 'a fragmented ping', frames: () => [wsFrame(OP.ping, 'a', { fin: false }), wsFrame(OP.continuation, 'b')], code: 1002 },
      { name: 'an unmasked client frame', frames: () => [wsFrame(OP.text, '{"type":"ping"}', { mask: false })], code: 1002 },
      ...[4, 2, 1].map((rsv, i) => ({
        name: `RSV${i + 1} set without an extension that defines it`,
        frames: () => [wsFrame(OP.text, '{"type":"ping"}', { rsv })],
        code: 1002 as const,
      })),
      ...[0x3, 0x7, 0xb, 0xf].map((opcode) => ({
        name: `the reserved opcode 0x${opcode.toString(16)}`,
        frames: () => [wsFrame(opcode, 'x')],
        code: 1002 as const,
      })),
      {
        name: 'a new text frame inside a fragmented message',
        frames: () => [wsFrame(OP.text, '{"type":', { fin: false }), wsFrame(OP.text, '{"type":"ping"}')],
        code: 1002,
      },
      { name: 'a close frame with a one-byte body', frames: () => [wsFrame(OP.close, Buffer.from([0x03]))], code: 1002 },
      {
        name: 'invalid UTF-8 split across two fragments',
        frames: () => [
          wsFrame(OP.text, Buffer.from([0x22, 0xe2, 0x82]), { fin: false }),
          wsFrame(OP.continuation, Buffer.from([0x28, 0x22])),
        ],
        code: 1007,
      },
    ];

    it(`closes each of ${violations.length} protocol violations with its RFC 6455 code (1002, 1007), on the node and through the gateway`, async () => {
      await underAttack('the protocol violations', async () => {
        for (const { name: where, target } of targets()) {
          for (const [i, v] of violations.entries()) {
            const raw = await session(target, `violator-${where}-${i}`);
            raw.write(Buffer.concat(v.frames()));
            assert.equal(await raw.closeCode(), v.code, `${where}: ${v.name}`);
          }
        }
      });
    });

    it('survives a protocol violation sent before the token is checked: the node and the gateway close with 4001 and keep serving', async () => {
      const unmasked = wsFrame(OP.text, 'hi', { mask: false });
      // The node and the gateway run in this process: a crash of theirs is an uncaught exception here.
      const crashes: string[] = [];
      const onCrash = (err: Error) => void crashes.push(err.message);
      process.on('uncaughtException', onCrash);
      await underAttack('violations before the token check', async () => {
        for (const { name, target } of targets()) {
          for (const query of ['?token=not-a-token', '']) {
            // The bad frame comes in the same packet as the upgrade request: ws parses it while the
            // token is being checked, or right after the 4001 close.
            const raw = await open(target, Buffer.concat([Buffer.from(upgradeRequest(query)), unmasked]));
            assert.equal(await raw.status(), 101, `${name} ${query || 'without a token'}`);
            assert.equal(await raw.closeCode(), 4001, `${name} ${query || 'without a token'}`);
          }
        }
        // With a valid token the frame is held until the session takes it, which closes 1002.
        for (const { name, target } of targets()) {
          const raw = await open(target, Buffer.concat([Buffer.from(upgradeRequest(`?token=${await token(`early-${name}`)}`)), unmasked]));
          assert.equal(await raw.closeCode(), 1002, `${name}: a valid token, then an unmasked frame`);
        }
      }).finally(() => process.off('uncaughtException', onCrash));
      assert.deepEqual(crashes, [], 'no bad frame became an uncaught exception (which ends a real node or gateway process)');
    });
  });

  describe('S3: the handshake', () => {
    it('answers an upgrade with 2,000 headers (20 KB, over the 16 KB limit) with 431, on the node and the gateway', async () => {
      const many = Array.from({ length: 2000 }, (_, i) => `X-Header-${i}: 1`);
      await underAttack('2,000 headers', async () => {
        for (const { name, target } of targets()) {
          const raw = await open(target, upgradeRequest(`?token=${await token('many-headers')}`, { after: many }));
          assert.equal(await raw.status(), 431, name);
          await eventually(() => raw.tcpClosed, { ...WAIT, message: `${name} to close the connection` });
        }
      });
    });

    it('refuses an upgrade whose Sec-WebSocket-Key comes after 2,000 tiny headers (past maxHeadersCount) with 400, not a crash', async () => {
      // 12 KB: within the size limit, but Node keeps only the first 2,000 headers, so the
      // WebSocket key and version are dropped (the shape of CVE-2024-37890 in ws).
      const tiny = Array.from({ length: 2000 }, (_, i) => `h${i % 10}: 1`);
      await underAttack('2,000 tiny headers', async () => {
        for (const { name, target } of targets()) {
          const raw = await open(target, upgradeRequest(`?token=${await token('tiny-headers')}`, { before: tiny }));
          assert.equal(await raw.status(), 400, name);
          await eventually(() => raw.tcpClosed, { ...WAIT, message: `${name} to close the connection` });
          assert.match(raw.body.toString(), /Sec-WebSocket-Key/, `${name}: the answer says what is missing`);
        }
      });
    });

    it('answers an upgrade with a 32 KB Sec-WebSocket-Protocol header with 431, on the node and the gateway', async () => {
      const protocols = Array.from({ length: 5000 }, (_, i) => `p${i}`).join(', ');
      assert.ok(protocols.length > 32 * 1024);
      await underAttack('a 32 KB Sec-WebSocket-Protocol', async () => {
        for (const { name, target } of targets()) {
          const raw = await open(
            target,
            upgradeRequest(`?token=${await token('protocols')}`, { after: [`Sec-WebSocket-Protocol: ${protocols}`] }),
          );
          assert.equal(await raw.status(), 431, name);
        }
      });
    });

    it(`cuts off 300 slowloris sockets trickling a byte a second with 408 after handshakeTimeoutMs (${HANDSHAKE_MS} ms), while normal requests are served`, async () => {
      const upgradeHead = upgradeRequest(`?token=${await token('slowloris')}`).replace(/\r\n\r\n$/, '\r\nX-Slow: ');
      const httpHead = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ';
      const plan = [
        { name: 'node', target: node, count: 200 },
        { name: 'gateway', target: gw, count: 100 },
      ];
      await underAttack('slowloris', async () => {
        const started = Date.now();
        const sockets = (
          await Promise.all(
            plan.flatMap(({ name, target, count }) =>
              Array.from({ length: count }, async (_, i) => ({ name, kind: i % 2 ? 'upgrade' : 'http', raw: await open(target) })),
            ),
          )
        ).map((s) => ({ ...s, trickled: 0, closedAfter: -1 }));
        for (const s of sockets) {
          s.raw.write(s.kind === 'upgrade' ? upgradeHead : httpHead);
          s.raw.socket.once('close', () => (s.closedAfter = Date.now() - started));
        }
        // One header byte a second each, forever: only a bound on the whole request head stops them.
        const trickle = setInterval(() => {
          for (const s of sockets) {
            if (s.raw.tcpClosed) continue;
            s.raw.write('a');
            s.trickled++;
          }
        }, 1000);
        try {
          // Meanwhile the node and the gateway answer normal requests and take new sessions.
          while (sockets.some((s) => !s.raw.tcpClosed) && Date.now() - started < 20_000) {
            for (const { name, target } of targets()) {
              const res = await fetch(`${target.url}/healthz`);
              assert.equal(res.status, 200, `${name} /healthz during the attack`);
              await res.arrayBuffer();
            }
            const fresh = await TestClient.connect(gw, 'newcomer');
            await fresh.close();
            await sleep(200);
          }
        } finally {
          clearInterval(trickle);
        }
        for (const s of sockets) {
          const label = `${s.name} ${s.kind} socket`;
          assert.equal(s.raw.tcpClosed, true, `${label} still open after 20 s`);
          assert.equal(await s.raw.status(), 408, `${label}: answered 408 Request Timeout`);
          assert.ok(s.closedAfter >= HANDSHAKE_MS - 200, `${label} cut after ${s.closedAfter} ms, before the timeout`);
        }
        assert.ok(
          sockets.every((s) => s.trickled >= 1),
          'every socket kept trickling past the first second (trickling does not extend the bound)',
        );
      });
    });
  });

  describe('S4: origins (allowedOrigins set)', () => {
    /** Upgrades with `origins` as Origin header lines; resolves with the status (and the welcome on 101). */
    async function tryOrigin(target: TestNode, user: string, origins: string[]): Promise<{ status: number; body: string }> {
      const raw = await open(
        target,
        upgradeRequest(`?token=${await token(user)}`, { after: origins.map((o) => (o === '' ? 'Origin:' : `Origin: ${o}`)) }),
      );
      const status = await raw.status();
      if (status === 101) await raw.next((f) => f.type === 'welcome');
      else await eventually(() => raw.tcpClosed, { ...WAIT, message: 'the refused connection to be closed' });
      raw.destroy();
      return { status, body: raw.body.toString() };
    }

    it('accepts the allowed origins in any letter case and with their default port written out (the same origin, RFC 6454 §4–5)', async () => {
      const same = [
        'https://allowed.example',
        'HTTPS://ALLOWED.EXAMPLE',
        'https://Allowed.Example',
        'https://allowed.example:443',
        'http://localhost:3000',
        'HTTP://LocalHost:3000',
      ];
      await underAttack('same-origin variants', async () => {
        for (const { name, target } of targets())
          for (const [i, origin] of same.entries())
            assert.equal((await tryOrigin(target, `origin-${name}-${i}`, [origin])).status, 101, `${name}: ${origin}`);
      });
    });

    const lookAlikes = [
      'https://allowed.example.', // trailing dot: another host string, another origin for browsers
      'https://allowed.example@evil.com', // userinfo: the host is evil.com
      'https://user@allowed.example', // not an origin serialization
      'https://allowed.example/', // a path
      'https://allowed.example/app',
      'https://allowed.example:80', // the other scheme's default port
      'http://allowed.example:443',
      'wss://allowed.example',
      'https://allowed.example, https://evil.com',
      '', // an empty Origin header is not an absent one
    ];
    /** Also run on the node by connect.test.ts ("allowed origins"). */
    const coveredOnNode = [
      'null',
      'https://allowed.example.evil.com',
      'https://evilallowed.example',
      'http://allowed.example',
      'https://allowed.example:8443',
    ];

    it(`refuses ${lookAlikes.length} look-alike origins with 403 forbidden on the node and the gateway (and ${coveredOnNode.length} more on the gateway)`, async () => {
      await underAttack('look-alike origins', async () => {
        for (const { name, target } of targets()) {
          for (const origin of name === 'gateway' ? [...lookAlikes, ...coveredOnNode] : lookAlikes) {
            const { status, body } = await tryOrigin(target, 'look-alike', [origin]);
            assert.equal(status, 403, `${name}: ${JSON.stringify(origin)}`);
            assert.deepEqual(JSON.parse(body), FORBIDDEN_ORIGIN, `${name}: ${JSON.stringify(origin)}`);
          }
        }
      });
    });

    it('refuses a request with two Origin headers with 403, whatever their order, even both allowed', async () => {
      const pairs = [
        ['https://allowed.example', 'https://evil.com'],
        ['https://evil.com', 'https://allowed.example'],
        ['https://allowed.example', 'https://allowed.example'],
      ];
      await underAttack('two Origin headers', async () => {
        for (const { name, target } of targets())
          for (const pair of pairs)
            assert.equal((await tryOrigin(target, 'two-origins', pair)).status, 403, `${name}: ${pair.join(' + ')}`);
      });
    });
  });
});
