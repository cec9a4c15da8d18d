/**
 * Client-side test helpers: SDK clients tracked for cleanup, an inbox that checks offsets, event
 * waiting, a TCP proxy that can cut or blackhole the network, and the real CLI as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { Switchboard, type ClientEvents, type ClientOptions, type Message, type TopicMap } from '../src/index.js';
import { API_KEY, SECRET, sleep } from '../../server/test/helpers.js';

export { sleep };

/**
 * Polls `probe` until it returns something other than `undefined`/`false`; throws after
 * `timeoutMs` with `what` in the message. Generous timeouts are the rule: the CI box is shared.
 */
export async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Rejects with `what` if `promise` does not settle within `timeoutMs`; the timer never outlives it. */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs)),
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One recorded client event. */
export interface RecordedEvent {
  name: keyof ClientEvents;
  payload: unknown;
  at: number;
}

/** Every SDK client made by {@link createClient}, so that `closeClients` can stop them all. */
const clients = new Set<Switchboard<TopicMap>>();

/**
 * A client with the `ws` WebSocket and an event log, tracked for {@link closeClients}.
 * `log` records every lifecycle event (not messages) in order.
 */
export function createClient<T extends TopicMap = TopicMap>(
  url: string,
  token: ClientOptions['token'],
  options: Partial<ClientOptions> = {},
): { client: Switchboard<T>; log: RecordedEvent[] } {
  const client = new Switchboard<T>(url, { token, WebSocket, ...options });
  const log: RecordedEvent[] = [];
  for (const name of ['state', 'connecting', 'connected', 'disconnected', 'closed', 'recovery-failed', 'error'] as const) {
    client.events.on(name, (payload) => log.push({ name, payload, at: Date.now() }));
  }
  clients.add(client as Switchboard<TopicMap>);
  return { client, log };
}

/** {@link createClient}, then waits for its first `connected` (the welcome). */
export async function connectClient<T extends TopicMap = TopicMap>(
  url: string,
  token: ClientOptions['token'],
  options: Partial<ClientOptions> = {},
  timeoutMs = 5000,
) {
  const made = createClient<T>(url, token, options);
  const welcome = await nextEvent(made.client as Switchboard<TopicMap>, 'connected', () => true, timeoutMs);
  return { ...made, welcome };
}

/** Disconnects every client made by {@link createClient} (for `after` hooks). */
export function closeClients(): void {
  for (const client of clients) if (client.state !== 'closed') client.disconnect();
  clients.clear();
}

/** Resolves with the next `event` of `client` matching `pred` (registered now, so call it before acting). */
export function nextEvent<K extends keyof ClientEvents>(
  client: Switchboard<TopicMap> | Switchboard<never>,
  event: K,
  pred: (p: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<ClientEvents[K]> {
  const events = (client as Switchboard<TopicMap>).events;
  let off: (() => void) | undefined;
  const hit = new Promise<ClientEvents[K]>((resolve) => {
    off = events.on(event, (payload) => {
      if (!pred(payload)) return;
      off?.();
      resolve(payload);
    });
  });
  return within(hit, `client event ${String(event)}`, timeoutMs).finally(() => off?.());
}

/** Waits until the client is in `state`. */
export function waitState(
  client: Switchboard<TopicMap> | Switchboard<never>,
  state: Switchboard['state'],
  timeoutMs = 5000,
): Promise<unknown> {
  return until(
    () => (client as Switchboard<TopicMap>).state === state,
    `state ${state} (now ${(client as Switchboard<TopicMap>).state})`,
    timeoutMs,
  );
}

/**
 * Records the messages the app sees for one topic through `client.on(topic)` and checks the SDK's
 * promise: per channel, offsets grow by exactly 1 (no gap, no duplicate) within an epoch.
 */
export class Inbox {
  readonly messages: Message[] = [];

  constructor(client: Switchboard<TopicMap>, topic: string) {
    client.on(topic, (m) => this.messages.push(m));
  }

  /** The messages of `channel`, in arrival order. */
  of(channel: string): Message[] {
    return this.messages.filter((m) => m.channel === channel);
  }

  /** The `data` of the messages of `channel`, in arrival order. */
  data(channel: string): unknown[] {
    return this.of(channel).map((m) => m.data);
  }

  /** Waits until `channel` has at least `count` messages. */
  async waitCount(channel: string, count: number, timeoutMs = 5000): Promise<Message[]> {
    await until(() => this.of(channel).length >= count, `${count} messages on ${channel} (have ${this.of(channel).length})`, timeoutMs);
    return this.of(channel);
  }

  /** Waits for a message of `channel` whose data equals `data`. */
  async waitData(channel: string, data: unknown, timeoutMs = 5000): Promise<Message> {
    return until(
      () => this.of(channel).find((m) => JSON.stringify(m.data) === JSON.stringify(data)),
      `${JSON.stringify(data)} on ${channel}`,
      timeoutMs,
    );
  }

  /**
   * Throws unless every channel's offsets increase by exactly 1 within an epoch (a new epoch may
   * start anywhere). Returns the number of epoch changes per channel.
   */
  assertContiguous(): Record<string, number> {
    const changes: Record<string, number> = {};
    const last = new Map<string, Message>();
    for (const m of this.messages) {
      const prev = last.get(m.channel);
      changes[m.channel] ??= 0;
      if (prev && prev.epoch === m.epoch && m.offset !== prev.offset + 1) {
        throw new Error(`${m.channel}: offset ${m.offset} after ${prev.offset} (${prev.offset >= m.offset ? 'duplicate/reorder' : 'gap'})`);
      }
      if (prev && prev.epoch !== m.epoch) changes[m.channel]!++;
      last.set(m.channel, m);
    }
    return changes;
  }
}

// ---- TCP proxy -----------------------------------------------------------------------------

/** One client connection through the proxy. */
interface Pair {
  client: Socket;
  upstream: Socket | undefined;
  /** Blackholed: every byte, both ways, is dropped for the rest of this connection's life. */
  dead: boolean;
  /** Client → server still flows, server → client is dropped. */
  dropDown: boolean;
  /** Client → server bytes not yet parsed into WebSocket frames (after the HTTP request). */
  parse: Buffer;
  upgraded: boolean;
}

/** A tap on client → server text frames: fires once on the first frame `pred` accepts. */
interface Tap {
  pred: (text: string) => boolean;
  fire: () => void;
}

/**
 * A TCP proxy between the SDK and a node, to break the network in the ways real networks break.
 * - `cut()`: destroy every connection (the client sees 1006, no close frame); with
 *   `{ refuse: true }` new connections are closed at once too, until `forward()`.
 * - `blackhole()`: connections stay open but no byte passes either way — neither side's OS
 *   notices, only a heartbeat can. Connections blackholed stay dead (like an expired NAT entry);
 *   `forward()` only heals new connections.
 * - `dropRepliesAfter(pred)`: once a client frame matching `pred` has been forwarded upstream,
 *   nothing more of that connection reaches the client (the server's reply is lost).
 */
export class TcpProxy {
  /** TCP connections accepted so far (each SDK connection attempt is one). */
  accepted = 0;
  /** Every client → server text frame forwarded upstream, unmasked, in order. */
  readonly clientFrames: string[] = [];
  private mode: 'forward' | 'refuse' | 'blackhole' = 'forward';
  private readonly pairs = new Set<Pair>();
  private taps: Tap[] = [];

  private constructor(
    private readonly server: Server,
    private targetPort: number,
  ) {}

  /** Listens on an ephemeral loopback port, forwarding to `targetPort`. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server, targetPort);
    server.on('connection', (socket) => proxy.onConnection(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The proxy's port. */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The WebSocket URL of the node behind the proxy. */
  wsUrl(path = '/ws'): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** Sends new connections to another port (existing ones stay where they are). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  /** Destroys every connection; with `refuse`, also every new one until `forward()`. */
  cut(options: { refuse?: boolean } = {}): void {
    if (options.refuse) this.mode = 'refuse';
    for (const pair of this.pairs) this.destroy(pair);
  }

  /** Stops forwarding, both ways, on every current and new connection; sockets stay open. */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const pair of this.pairs) pair.dead = true;
  }

  /** New connections are forwarded normally again. */
  forward(): void {
    this.mode = 'forward';
  }

  /** Resolves once a client → server text frame matching `pred` went upstream and server → client was cut off. */
  dropRepliesAfter(pred: (text: string) => boolean): Promise<void> {
    return new Promise((fire) => this.taps.push({ pred, fire }));
  }

  /** Open connections. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Destroys every connection and stops listening. */
  async close(): Promise<void> {
    for (const pair of this.pairs) this.destroy(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: Socket): void {
    this.accepted++;
    if (this.mode === 'refuse') {
      client.destroy();
      return;
    }
    const pair: Pair = {
      client,
      upstream: undefined,
      dead: this.mode === 'blackhole',
      dropDown: false,
      parse: Buffer.alloc(0),
      upgraded: false,
    };
    this.pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => this.closed(pair));
    if (!pair.dead) {
      const upstream = tcpConnect(this.targetPort, '127.0.0.1');
      pair.upstream = upstream;
      upstream.on('error', () => undefined);
      upstream.on('close', () => this.closed(pair));
      upstream.on('data', (chunk: Buffer) => {
        if (!pair.dead && !pair.dropDown) client.write(chunk);
      });
    }
    client.on('data', (chunk: Buffer) => {
      if (pair.dead || !pair.upstream) return;
      const fired = this.inspect(pair, chunk);
      pair.upstream.write(chunk);
      if (fired.length > 0) {
        pair.dropDown = true;
        for (const tap of fired) tap.fire();
      }
    });
  }

  /** Parses client frames (masked, after the HTTP upgrade request) and returns the taps they trigger. */
  private inspect(pair: Pair, chunk: Buffer): Tap[] {
    pair.parse = Buffer.concat([pair.parse, chunk]);
    if (!pair.upgraded) {
      const end = pair.parse.indexOf('\r\n\r\n');
      if (end < 0) return [];
      pair.upgraded = true;
      pair.parse = pair.parse.subarray(end + 4);
    }
    const fired: Tap[] = [];
    for (;;) {
      const frame = readClientFrame(pair.parse);
      if (!frame) break;
      pair.parse = pair.parse.subarray(frame.length);
      if (frame.opcode !== 1) continue;
      this.clientFrames.push(frame.text);
      for (const tap of this.taps) {
        if (tap.pred(frame.text)) fired.push(tap);
      }
      this.taps = this.taps.filter((t) => !fired.includes(t));
    }
    return fired;
  }

  /**
   * One side closed. Normally the other side is closed too; in a blackhole the FIN or RST is lost
   * like every other byte, so the other side stays open until its own end notices.
   */
  private closed(pair: Pair): void {
    if (!pair.dead) return this.destroy(pair);
    const gone = (s: Socket | undefined) => !s || s.destroyed;
    if (gone(pair.client) && gone(pair.upstream)) this.pairs.delete(pair);
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}

/** Decodes one masked client WebSocket frame at the start of `buf`, or `undefined` if incomplete. */
function readClientFrame(buf: Buffer): { opcode: number; text: string; length: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0]! & 0x0f;
  const masked = (buf[1]! & 0x80) !== 0;
  let len = buf[1]! & 0x7f;
  let pos = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    pos = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    pos = 10;
  }
  const mask = masked ? buf.subarray(pos, pos + 4) : undefined;
  if (masked) pos += 4;
  if (buf.length < pos + len) return undefined;
  const payload = Buffer.from(buf.subarray(pos, pos + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { opcode, text: payload.toString('utf8'), length: pos + len };
}

// ---- the real CLI ----------------------------------------------------------------------------

const BIN = fileURLToPath(new URL('../../server/bin/switchboard.js', import.meta.url));

/** A `switchboard node` child process. */
export interface CliNode {
  child: ChildProcess;
  url: string;
  wsUrl: string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

/** A loopback port that was free a moment ago (for a server restarted on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Runs `switchboard node --port <port>` with the test secret and API key in its environment and
 * waits until `/healthz` answers. Extra flags go in `args`.
 */
export async function spawnCliNode(port: number, args: string[] = [], timeoutMs = 10_000): Promise<CliNode> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHBOARD_') && k !== 'PORT' && k !== 'HOST'),
  );
  const child = spawn(process.execPath, [BIN, 'node', '--port', String(port), ...args], {
    env: { ...clean, SWITCHBOARD_JWT_SECRET: SECRET, SWITCHBOARD_API_KEY: API_KEY, SWITCHBOARD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const cli: CliNode = {
    child,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    stderr: () => err,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await until(() => child.exitCode !== null || /node \S+ on http/.test(err), 'the CLI banner', timeoutMs);
    if (child.exitCode !== null) throw new Error(`switchboard exited ${child.exitCode}: ${err}`);
    return cli;
  } catch (e) {
    await cli.kill();
    throw e;
  }
}

/** POST /v1/publish to a base URL with the test API key; resolves with the status and body. */
export async function publishHttp(
  baseUrl: string,
  body: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${baseUrl}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
