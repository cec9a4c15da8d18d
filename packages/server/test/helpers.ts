/**
 * Test helpers: a real node on a loopback port, real tokens, and a WebSocket client that records
 * every frame so tests can wait for the one they expect.
 */
import { once } from 'node:events';
import { after, before } from 'node:test';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { SwitchboardNode, createEngine, resolveOptions, type Engine, type NodeOptionsInput } from '../src/index.js';
import { eventually } from './support/eventually.js';
import { logSink } from './support/log-sink.js';

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop';
export const API_KEY = 'test-api-key-0123456789';

/** A started node plus what tests need to talk to it; `logs` holds every JSON log line. */
export interface TestNode {
  node: SwitchboardNode;
  url: string;
  wsUrl: string;
  logs: string[];
  stop(): Promise<void>;
}

/** Starts a node on an ephemeral port with test secrets; `options` override the defaults. */
export async function startNode(
  options: NodeOptionsInput = {},
  mode: 'dev' | 'start' | 'node' = 'node',
  /** Changes the engine built from the options before the node gets it (a test's own publication path, say). */
  editEngine?: (engine: Engine) => void,
): Promise<TestNode> {
  const { lines: logs, stream: sink } = logSink();
  const resolved = resolveOptions({ port: 0, jwtSecret: SECRET, apiKey: API_KEY, logLevel: 'info', nodeId: 'n-test', ...options });
  let engine: Engine | undefined;
  if (editEngine) {
    engine = createEngine(resolved);
    editEngine(engine);
  }
  const node = new SwitchboardNode(resolved, { mode, logDestination: sink, engine });
  const { url } = await node.start();
  return { node, url, wsUrl: url.replace(/^http/, 'ws') + (node.options.wsPath ?? '/ws'), logs, stop: () => node.stop() };
}

/** Mints an HS256 token; claims override the defaults (`sub`, one-hour `exp`). */
export async function token(
  user: string,
  claims: Record<string, unknown> = {},
  opts: { secret?: string; expiresIn?: number | null } = {},
): Promise<string> {
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt();
  if (opts.expiresIn !== null) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (opts.expiresIn ?? 3600));
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

/** A parsed server frame (or the bare text `pong`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = Record<string, any>;

/**
 * A WebSocket client that records every frame. `next(pred)` resolves with the first recorded,
 * not yet taken frame matching `pred`, waiting up to `timeoutMs`.
 */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly raw: string[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private readonly taken = new Set<Frame>();
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? `<binary ${(data as Buffer).length}>` : data.toString();
      this.raw.push(text);
      for (const line of text.split('\n')) {
        if (!line) continue;
        let frame: Frame;
        try {
          frame = line === 'pong' ? { type: 'pong', bare: true } : (JSON.parse(line) as Frame);
        } catch {
          frame = { type: 'unparsable', text: line };
        }
        this.frames.push(frame);
      }
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve({ code, reason: this.closeReason });
      });
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) =>
        reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
      );
    });
    this.opened.catch(() => undefined);
    this.ws.on('error', () => undefined);
  }

  /** Connects as `user` with a fresh token (extra claims allowed) and waits for `welcome`. */
  static async connect(node: TestNode, user: string, claims: Record<string, unknown> = {}, query = ''): Promise<TestClient> {
    const client = new TestClient(`${node.wsUrl}?token=${await token(user, claims)}${query}`);
    await client.next((f) => f.type === 'welcome');
    return client;
  }

  /** Sends a frame: objects are JSON-encoded, strings and buffers go as they are. */
  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame));
  }

  /** Sends a frame with `id` and resolves with its reply. */
  async request(frame: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
    const id = frame.id ?? Math.floor(Math.random() * 1e9);
    this.send({ ...frame, id });
    return this.next((f) => f.type === 'reply' && f.id === id, timeoutMs);
  }

  /** The first untaken frame matching `pred`; rejects after `timeoutMs` or when the socket closes first. */
  async next(pred: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find((f) => !this.taken.has(f) && pred(f));
      if (found) {
        this.taken.add(found);
        return found;
      }
      if (this.closeCode !== undefined)
        throw new Error(
          `socket closed (${this.closeCode} ${this.closeReason}) before the expected frame; got ${JSON.stringify(this.frames)}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a frame; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every `message` frame so far (of `channel` when given), in arrival order, whether `next` took it or not. */
  messages(channel?: string): Frame[] {
    return this.frames.filter((f) => f.type === 'message' && (channel === undefined || f.channel === channel));
  }

  /** Waits until `count` message frames (optionally of one channel) have arrived; resolves with `messages(channel)`. */
  async waitMessages(count: number, channel?: string, timeoutMs = 5000): Promise<Frame[]> {
    return eventually(
      () => {
        const got = this.messages(channel);
        if (got.length < count) throw new Error(`expected ${count} messages, got ${got.length}`);
        return got;
      },
      { timeoutMs, intervalMs: 10, message: `${count} message frames${channel === undefined ? '' : ` on ${channel}`}` },
    );
  }

  /** Waits for the close and returns its code and reason. */
  async waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out waiting for close')), timeoutMs);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes from the client side and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.waitClose().catch(() => this.ws.terminate());
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

/** Calls the node's HTTP API with the test API key. */
export async function api(
  node: TestNode,
  method: string,
  path: string,
  body?: unknown,
  key: string | null = API_KEY,
): Promise<{ status: number; body: Frame }> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(node.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Frame;
  try {
    parsed = JSON.parse(text) as Frame;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}

/**
 * Registers before/after hooks in the current `describe` that start a node and, afterwards, close
 * every client made with `connect` and stop the node.
 */
export function nodeFixture(options: NodeOptionsInput = {}): {
  readonly node: TestNode;
  connect: typeof TestClient.connect extends (n: TestNode, ...rest: infer R) => Promise<TestClient>
    ? (...args: R) => Promise<TestClient>
    : never;
  track(client: TestClient): TestClient;
} {
  let node: TestNode | undefined;
  const open: TestClient[] = [];
  before(async () => (node = await startNode(options)));
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node?.stop();
  });
  return {
    get node() {
      if (!node) throw new Error('node not started: use the fixture inside tests');
      return node;
    },
    async connect(user, claims, query) {
      return this.track(await TestClient.connect(this.node, user, claims, query));
    },
    track(client) {
      open.push(client);
      return client;
    },
  };
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export { once };
