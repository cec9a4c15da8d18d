/**
 * The actors of a chaos scenario: SDK clients that record what their app saw (for the checker),
 * and a backend that publishes at a steady rate over HTTP and records what was acknowledged.
 */
import { Agent, request } from 'node:http';
import WebSocket from 'ws';
import { Switchboard } from '../packages/client/src/index.js';
import { token } from '../packages/server/test/helpers.js';
import { hasSeenLatest, type Acked, type ClientLog } from './checker.js';
import { API_KEY } from './system.js';

type Position = { epoch: string; offset: number };

/**
 * One copy of each channel name and epoch for every log entry: the soak records over a million
 * deliveries, and each parsed frame brings strings of its own, which made the load generator's heap
 * (and its pauses for garbage collection) grow with every message.
 */
const interned = new Map<string, string>();
function intern(text: string): string {
  const known = interned.get(text);
  if (known !== undefined) return known;
  interned.set(text, text);
  return text;
}

/** One SDK client (as an app uses it) and its log. */
export class RecordingClient {
  readonly log: ClientLog;
  readonly sdk: Switchboard;
  /** The last position the app had per channel (a message's, or the first welcome's). */
  private readonly positions = new Map<string, Position>();
  /** The SDK's sockets, the newest last (so a scenario can kill the current one under it). */
  private readonly sockets: WebSocket[] = [];
  connected = false;

  /**
   * @param personal also judge the user's own channel (`user:<id>`), which every session is in
   */
  constructor(url: string, user: string, groups: string[], personal = false) {
    const channels = groups.map((g) => `group:${g}`);
    if (personal) channels.push(`user:${user}`);
    this.log = { id: user, channels, seen: [], failures: [], drops: [], starts: {} };
    const sockets = this.sockets;
    class Tracked extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.push(this);
        if (sockets.length > 2) sockets.shift();
      }
    }
    this.sdk = new Switchboard(url, {
      token: () => token(user, { groups }),
      WebSocket: Tracked as unknown as typeof globalThis.WebSocket,
      backoff: (attempt) => Math.min(2000, 100 * 2 ** attempt) * Math.random(),
    });
    const { log, positions } = this;
    this.sdk.events.on('message', (m) => {
      log.seen.push({ channel: intern(m.channel), epoch: intern(m.epoch), offset: m.offset, at: Date.now() });
      positions.set(m.channel, { epoch: m.epoch, offset: m.offset });
    });
    this.sdk.events.on('connected', (welcome) => {
      this.connected = true;
      const drop = log.drops.at(-1);
      if (drop && drop.back === undefined) drop.back = Date.now();
      for (const [channel, sub] of Object.entries(welcome.subscriptions)) {
        if (positions.has(channel)) continue;
        positions.set(channel, { epoch: sub.epoch, offset: sub.offset });
        log.starts![channel] = { epoch: sub.epoch, offset: sub.offset };
      }
    });
    this.sdk.events.on('disconnected', () => {
      if (this.connected) log.drops.push({ at: Date.now(), back: undefined });
      this.connected = false;
    });
    this.sdk.events.on('recovery-failed', (d) => {
      log.failures.push({ channel: d.channel, from: positions.get(d.channel), to: { epoch: d.epoch, offset: d.offset }, at: Date.now() });
      positions.set(d.channel, { epoch: d.epoch, offset: d.offset });
    });
  }

  /** Resolves at the first welcome. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      if (Date.now() > deadline) throw new Error(`${this.log.id} did not connect`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resets the current connection under the SDK (as a network drop would); the SDK reconnects. */
  dropConnection(): void {
    this.sockets.at(-1)?.terminate();
  }

  /** Leaves for good: what comes after is not expected of this client. */
  leave(): void {
    this.log.leftAt = Date.now();
    this.close();
  }

  /**
   * Leaves once the app has seen `latest` (what was acknowledged on its channels at `at`), or after
   * `timeoutMs`: everything acknowledged until `at` is then expected of it, with no grace for
   * messages still on their way. What has not come by the deadline is judged lost.
   */
  async leaveAfter(latest: ReadonlyMap<string, Acked>, at: number, timeoutMs = 10_000): Promise<void> {
    this.log.awaited = { at, positions: Object.fromEntries([...latest].map(([c, a]) => [c, { epoch: a.epoch, offset: a.offset }])) };
    const deadline = Date.now() + timeoutMs;
    while (!hasSeenLatest(this.log, latest) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.leave();
  }

  close(): void {
    this.sdk.disconnect();
  }
}

/** Opens `count` recording clients in `group`, a few at a time. */
export async function openClients(
  url: string,
  count: number,
  group: string | ((i: number) => string),
  prefix = 'u',
  personal = false,
): Promise<RecordingClient[]> {
  const clients: RecordingClient[] = [];
  const groupOf = typeof group === 'string' ? () => group : group;
  for (let i = 0; i < count; i += 20) {
    const batch = Array.from(
      { length: Math.min(20, count - i) },
      (_, j) => new RecordingClient(url, `${prefix}${i + j}`, [groupOf(i + j)], personal),
    );
    await Promise.all(batch.map((c) => c.ready()));
    clients.push(...batch);
  }
  return clients;
}

const MAX_IN_FLIGHT = 32;

/** A backend publishing to one channel at a steady rate, to any live node in turn. */
export class Publisher {
  readonly acked: Acked[] = [];
  failed = 0;
  /** How far the last tick was behind the rate (requests not sent for want of a free slot). */
  behind = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private turn = 0;

  constructor(
    private readonly nodes: () => { url: string }[],
    private readonly channel: string,
    private readonly perSecond: number,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.close();
  }

  private async run(): Promise<void> {
    const tickMs = 10;
    const started = Date.now();
    let sent = 0;
    const inFlight = new Set<Promise<void>>();
    while (this.running) {
      const due = Math.floor(((Date.now() - started) * this.perSecond) / 1000);
      // At most MAX_IN_FLIGHT requests at once: a system that falls behind gets a lower rate, not a pile-up.
      for (; sent < due && inFlight.size < MAX_IN_FLIGHT; sent++) {
        const p = this.publishOne(sent).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      if (sent < due) this.behind = due - sent;
      await new Promise((r) => setTimeout(r, tickMs));
    }
    await Promise.all(inFlight);
  }

  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });

  private async publishOne(seq: number): Promise<void> {
    const nodes = this.nodes();
    if (nodes.length === 0) return void this.failed++;
    const node = nodes[this.turn++ % nodes.length]!;
    const body = JSON.stringify({ channel: this.channel, topic: 'tick', data: { seq } });
    const answer = await new Promise<{ status: number; text: string } | undefined>((resolve) => {
      const req = request(
        `${node.url}/v1/publish`,
        {
          method: 'POST',
          agent: this.agent,
          timeout: 5000,
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', () => resolve(undefined));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end(body);
    });
    // Refused, reset or timed out: not acknowledged, so not expected anywhere.
    if (!answer || answer.status !== 200) return void this.failed++;
    const { epoch, offset } = JSON.parse(answer.text) as { epoch: string; offset: number };
    this.acked.push({ channel: this.channel, epoch, offset, at: Date.now() });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * A backend publishing at a steady rate over a WebSocket of its own (`?batch=1`, a member of the
 * groups it publishes to), each publication with an `id` whose reply is the acknowledgement: to one
 * channel, or to the channel `target(seq)` names (`user:<id>` goes out as a `send`). When its node
 * goes, it connects to another live node; what was in flight on the lost socket was never
 * acknowledged, so it is expected nowhere.
 */
export class SocketPublisher {
  readonly acked: Acked[] = [];
  failed = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private ws: WebSocket | undefined;
  /** Publications in flight: id → channel. */
  private readonly pending = new Map<number, string>();
  private turn = 0;
  private readonly target: (seq: number) => string;
  private readonly groups: string[];

  constructor(
    private readonly nodes: () => { wsUrl: string }[],
    target: string | ((seq: number) => string),
    private readonly perSecond: number,
    options: { groups?: string[]; data?: (seq: number) => unknown; firstNode?: number } = {},
  ) {
    this.turn = options.firstNode ?? 0;
    this.target = typeof target === 'string' ? () => target : target;
    this.groups = options.groups ?? (typeof target === 'string' && target.startsWith('group:') ? [target.slice('group:'.length)] : []);
    if (options.data) this.data = options.data;
  }

  private readonly data: (seq: number) => unknown = (seq) => ({ seq });

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    // Let the last replies come.
    const deadline = Date.now() + 3000;
    while (this.pending.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.failed += this.pending.size;
    this.pending.clear();
    this.ws?.terminate();
  }

  private async connect(): Promise<WebSocket | undefined> {
    const nodes = this.nodes();
    if (nodes.length === 0) return undefined;
    const node = nodes[this.turn++ % nodes.length]!;
    const ws = new WebSocket(`${node.wsUrl}?batch=1&token=${await token('chaos-publisher', { groups: this.groups })}`);
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('message', () => resolve(true)); // the welcome
      ws.once('error', () => resolve(false));
      ws.once('close', () => resolve(false));
    });
    if (!opened) return undefined;
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString().split('\n')) {
        if (!line.startsWith('{"type":"reply"')) continue;
        const reply = JSON.parse(line) as { id: number; ok: boolean; epoch?: string; offset?: number };
        const channel = this.pending.get(reply.id);
        if (channel === undefined) continue;
        this.pending.delete(reply.id);
        if (reply.ok && reply.epoch !== undefined && reply.offset !== undefined)
          this.acked.push({ channel: intern(channel), epoch: intern(reply.epoch), offset: reply.offset, at: Date.now() });
        else this.failed++;
      }
    });
    ws.on('close', () => {
      // Whatever was in flight on this socket will never be acknowledged.
      this.failed += this.pending.size;
      this.pending.clear();
      if (this.ws === ws) this.ws = undefined;
    });
    ws.on('error', () => undefined);
    return ws;
  }

  private frame(seq: number): string {
    const channel = this.target(seq);
    this.pending.set(seq, channel);
    const data = this.data(seq);
    return channel.startsWith('user:')
      ? JSON.stringify({ type: 'send', to: channel.slice('user:'.length), topic: 'tick', data, id: seq })
      : JSON.stringify({ type: 'publish', channel, topic: 'tick', data, id: seq });
  }

  private async run(): Promise<void> {
    const started = Date.now();
    let sent = 0;
    while (this.running) {
      if (!this.ws) {
        this.ws = await this.connect();
        if (!this.ws) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
      }
      const due = Math.floor(((Date.now() - started) * this.perSecond) / 1000);
      const frames: string[] = [];
      for (; sent < due && this.pending.size < MAX_IN_FLIGHT * 16; sent++) frames.push(this.frame(sent));
      for (const f of frames) this.ws.send(f);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
