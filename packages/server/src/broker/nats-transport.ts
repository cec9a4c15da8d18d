import { connect, type ConnectionOptions, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { SwitchboardError } from '../errors.js';
import { BrokerUnreachableError } from './broker-unreachable.js';
import type { Destination, Transport, TransportHandler } from './transport.js';

/** How long {@link NatsTransport.connect} waits for NATS at start-up before giving up with a clear message. */
export const NATS_CONNECT_TIMEOUT_MS = 5000;

const START_HINT =
  'Start nats-server (scripts/ensure-nats.sh, or: nats-server -a 127.0.0.1 -p 4222) or set NATS_URL to a running server, e.g. nats://127.0.0.1:4222';
const AUTH_HINT = 'Check the user and password (nats://user:pass@host) or token (nats://token@host) in NATS_URL';
// Only characters NATS recommends for subjects stay as they are (`:` too: every channel has one).
const PLAIN = /^[A-Za-z0-9_:-]+$/;
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** A NATS URL (or comma-separated list) without its password or token, for messages and logs. */
export function redactNatsUrl(url: string): string {
  return url
    .split(',')
    .map((entry) => {
      const scheme = entry.indexOf('://');
      const from = scheme < 0 ? 0 : scheme + 3;
      // The last `@`: a password may contain one, a host cannot.
      const at = entry.lastIndexOf('@');
      if (at < from) return entry;
      const colon = entry.indexOf(':', from);
      const shown = colon < 0 || colon > at ? '[REDACTED]' : `${entry.slice(from, colon)}:[REDACTED]`;
      return entry.slice(0, from) + shown + entry.slice(at);
    })
    .join(',');
}

/**
 * One subject token for a channel or node id: percent-encoding of every UTF-8 byte outside
 * `[A-Za-z0-9_:-]` (`%` itself included), so `.`, `*`, `>` and whitespace never reach a subject,
 * and two names never share a token. `decodeURIComponent` (or {@link fromSubjectToken}) reverses
 * it; the empty name, which NATS cannot have as a token, is `%`.
 */
export function subjectToken(name: string): string {
  if (PLAIN.test(name)) return name;
  if (name === '') return '%';
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += PLAIN.test(c) ? c : `%${byte < 16 ? '0' : ''}${byte.toString(16).toUpperCase()}`;
  }
  return out;
}

/** The name a {@link subjectToken} stands for. */
export function fromSubjectToken(token: string): string {
  return token === '%' ? '' : decodeURIComponent(token);
}

/** Options of {@link NatsTransport}. */
export interface NatsTransportOptions {
  /**
   * `NATS_URL`: `nats://host:port`, or `tls://` for TLS; several comma-separated for a cluster.
   * Credentials in it (`nats://user:pass@host`, or a token as `nats://token@host`) are sent as the
   * connection's, and never appear in a message. @default 'nats://127.0.0.1:4222'
   */
  url?: string;
  /** First token(s) of every subject. @default 'sb' */
  prefix?: string;
  /** Connection name, as the server's monitoring (`/connz`) shows it. @default 'switchboard' */
  name?: string;
  /** Pause between reconnect attempts (plus up to 100 ms of jitter); the attempts never stop. @default 250 */
  reconnectWaitMs?: number;
  /** How long a `send` or `bind` waits for the server's PONG before it rejects with `ERR_UNAVAILABLE`. @default 2000 */
  confirmTimeoutMs?: number;
  /** How long {@link NatsTransport.connect} waits. @default NATS_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
}

interface Binding {
  sub: Subscription;
  /** Resolves once the server has the SUB (the flush after it came back). */
  confirmed: Promise<void>;
  /** Why the server refused the SUB (its -ERR comes before the flush's PONG). */
  refused?: Error;
}

/**
 * Transport over core NATS (no JetStream). Subjects: a channel is `<prefix>.ch.<token>`, a node
 * `<prefix>.node.<token>`, the cluster `<prefix>.all`, tokens from {@link subjectToken}.
 *
 * Delivery is at-most-once, as with Redis pub/sub: what is published while a node is disconnected
 * never reaches it, and sessions fill such holes from history by offset. JetStream is not used for
 * live fan-out because that repair already exists: a stream would store every publication a second
 * time (history has it), add a disk write and an acknowledgement to every message's path, and need
 * a consumer per node whose redeliveries the receiver would have to drop again.
 *
 * NATS keeps one connection's messages to one subject in publish order. `send` publishes, then
 * awaits one PING/PONG (`flush()`) shared by every publish and SUB of the event-loop turn: the
 * server answers a connection's commands in order, so the PONG confirms all of them at the cost of
 * one round trip per turn. The client re-sends its subscriptions after a reconnect by itself (an
 * unsubscribed one is forgotten at once, so it is not restored); the link is reported up once a
 * flush confirms them. While disconnected, `bind` and `send` reject at once instead of letting the
 * client buffer publishes for a reconnect that may never come. A rejected send may still have
 * been delivered (a lost PONG), never the other way round.
 */
export class NatsTransport implements Transport {
  readonly name = 'nats';
  /** First token(s) of every subject. */
  readonly prefix: string;
  private readonly url: string;
  private readonly where: string;
  private readonly connName: string;
  private readonly reconnectWaitMs: number;
  private readonly confirmTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private nc: NatsConnection | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private handler: TransportHandler | undefined;
  private readonly bindings = new Map<string, Binding>();
  /** The flush every send of this turn waits for. */
  private batch: Promise<void> | undefined;
  /** Connected now (sends and binds go through). */
  private connected = false;
  /** The state last reported through `link`. */
  private reported: 'up' | 'down' = 'up';
  /** Counts disconnects and reconnects, so a late confirm does not report an older state. */
  private generation = 0;
  /** The last server error reported, so that one repeated on every reconnect attempt is reported once. */
  private lastError: string | undefined;
  private secrets: string[] = [];

  constructor(options: NatsTransportOptions = {}) {
    this.url = options.url ?? 'nats://127.0.0.1:4222';
    this.where = redactNatsUrl(this.url);
    this.prefix = options.prefix ?? 'sb';
    if (!PREFIX.test(this.prefix))
      throw new Error(`NATS subject prefix "${this.prefix}" is not valid: dot-separated tokens of letters, digits, _ and -`);
    this.connName = options.name ?? 'switchboard';
    this.reconnectWaitMs = options.reconnectWaitMs ?? 250;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 2000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? NATS_CONNECT_TIMEOUT_MS;
  }

  get ready(): boolean {
    return this.connected && this.closing === undefined;
  }

  /** The subject of a destination. */
  subject(to: Destination): string {
    switch (to.kind) {
      case 'channel':
        return `${this.prefix}.ch.${subjectToken(to.channel)}`;
      case 'node':
        return `${this.prefix}.node.${subjectToken(to.node)}`;
      case 'all':
        return `${this.prefix}.all`;
    }
  }

  /**
   * Opens the connection: the engine's start-up step (`start` calls it too). Idempotent.
   * @throws BrokerUnreachableError naming `NATS_URL` and the fix, after `connectTimeoutMs` at most.
   */
  connect(): Promise<void> {
    this.connecting ??= this.open().catch((err: unknown) => {
      this.connecting = undefined; // a later call tries again
      throw err;
    });
    return this.connecting;
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.closing) throw new Error('transport closed');
    this.handler = handler;
    await this.connect();
  }

  async bind(to: Destination): Promise<void> {
    const subject = this.subject(to);
    const have = this.bindings.get(subject);
    if (have) return have.confirmed;
    const nc = this.live();
    const sub = nc.subscribe(subject, { callback: (err, msg) => this.receive(subject, binding, err, msg) });
    const binding: Binding = {
      sub,
      confirmed: this.confirm().then(
        () => {
          if (binding.refused) throw new Error(`NATS refused the subscription to ${subject}: ${this.scrub(binding.refused)}`);
        },
        (err: unknown) => {
          // Unconfirmed, it would come back with the next reconnect: forget it, the caller retries.
          if (this.bindings.get(subject) === binding) this.drop(subject);
          throw err;
        },
      ),
    };
    this.bindings.set(subject, binding);
    return binding.confirmed;
  }

  async unbind(to: Destination): Promise<void> {
    // The client forgets the subscription at once; its UNSUB may be lost with the link, but a
    // server that lost the link forgot it too, and the client does not send it again.
    this.drop(this.subject(to));
  }

  async send(to: readonly Destination[], payload: Buffer): Promise<void> {
    const nc = this.live();
    for (const d of to) nc.publish(this.subject(d), payload);
    return this.confirm();
  }

  /** Drains (unsubscribes, flushes what is pending) and closes the connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasUp = this.connected;
      this.connected = false;
      this.handler = undefined;
      this.bindings.clear();
      await this.connecting?.catch(() => undefined);
      const nc = this.nc;
      if (!nc || nc.isClosed()) return;
      // Draining waits for a PONG; with the link down there is nothing to drain.
      if (wasUp) await this.bounded(nc.drain(), 'drain').catch(() => undefined);
      if (!nc.isClosed()) await nc.close();
    })();
    return this.closing;
  }

  private async open(): Promise<void> {
    if (this.closing) throw new Error('transport closed');
    const options = this.options();
    const attempt = connect(options);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new BrokerUnreachableError(
              `NATS is not reachable at ${this.where} (NATS_URL): no answer within ${this.connectTimeoutMs} ms. ${START_HINT}`,
            ),
          ),
        this.connectTimeoutMs,
      );
    });
    let nc: NatsConnection;
    try {
      nc = await Promise.race([attempt, deadline]);
    } catch (err) {
      // A connection made after the deadline has no owner: close it.
      attempt.then(
        (late) => late.close(),
        () => undefined,
      );
      if (err instanceof BrokerUnreachableError) throw err;
      const auth = (err as Error)?.name === 'AuthorizationError';
      throw new BrokerUnreachableError(
        `NATS is not reachable at ${this.where} (NATS_URL): ${this.scrub(err)}. ${auth ? AUTH_HINT : START_HINT}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    if (this.closing) {
      await nc.close();
      throw new Error('transport closed');
    }
    this.nc = nc;
    this.connected = true;
    void this.watch(nc).catch((err: unknown) => this.handler?.error(err, 'watching the NATS connection failed'));
  }

  /** Client options from the URL; the client itself ignores credentials in a server URL. */
  private options(): ConnectionOptions {
    const servers: string[] = [];
    const auth: Pick<ConnectionOptions, 'user' | 'pass' | 'token'> = {};
    let tls = false;
    try {
      for (const entry of this.url
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const url = new URL(entry.includes('://') ? entry : `nats://${entry}`);
        if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new Error(`unsupported scheme ${url.protocol}//`);
        tls ||= url.protocol === 'tls:';
        if (url.username && auth.user === undefined && auth.token === undefined) {
          if (url.password) Object.assign(auth, { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) });
          else auth.token = decodeURIComponent(url.username);
        }
        servers.push(url.host);
      }
      if (servers.length === 0) throw new Error('no server in it');
    } catch (err) {
      throw new BrokerUnreachableError(
        `NATS_URL is not a NATS URL (${this.where}): ${this.scrub(err)}. Use nats://host:4222 (tls://host:4222 for TLS)`,
      );
    }
    this.secrets = [auth.pass, auth.token].filter((s): s is string => !!s);
    return {
      servers,
      ...auth,
      ...(tls ? { tls: {} } : {}),
      name: this.connName,
      timeout: this.connectTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.reconnectWaitMs,
      // Forever means forever: credentials fixed on the server are picked up by the next attempt.
      ignoreAuthErrorAbort: true,
      // A half-open link (no RST) is found within ~30 s; sends find it sooner, by their timeout.
      pingInterval: 10_000,
      maxPingOut: 2,
    };
  }

  /** Follows the connection's status: one `link` call per transition, each distinct server error once. */
  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (this.closing) continue;
      switch (status.type) {
        case 'disconnect':
          this.generation++;
          this.connected = false;
          this.report('down', `NATS connection to ${status.server} lost; reconnecting every ${this.reconnectWaitMs} ms`);
          break;
        case 'reconnect':
          this.generation++;
          this.connected = true;
          this.lastError = undefined;
          void this.confirmUp(this.generation, status.server);
          break;
        case 'error': {
          // A permissions violation on a publish, say: the flush still passes, so say it here.
          const message = this.scrub(status.error);
          if (message !== this.lastError) this.handler?.error(new Error(message), 'NATS server error');
          this.lastError = message;
          break;
        }
        case 'close':
          this.connected = false;
          this.report('down', 'NATS connection closed by the client library: no more reconnects');
          break;
      }
    }
  }

  /** Reports the link up once a flush confirms the SUBs the client re-sent, retrying while connected. */
  private async confirmUp(generation: number, server: string): Promise<void> {
    while (generation === this.generation && !this.closing) {
      try {
        await this.flush(this.nc!);
        if (generation === this.generation)
          this.report('up', `NATS connection to ${server} back, ${this.bindings.size} subscriptions restored`);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, this.reconnectWaitMs));
      }
    }
  }

  private report(state: 'up' | 'down', detail: string): void {
    if (this.reported === state) return;
    this.reported = state;
    this.handler?.link(state, detail);
  }

  private receive(subject: string, binding: Binding, err: Error | null, msg: Msg): void {
    if (err) {
      // A permissions violation: the client closed the subscription, and its 'error' status reports it.
      binding.refused = err;
      if (this.bindings.get(subject) === binding) this.bindings.delete(subject);
      return;
    }
    const data = msg.data;
    try {
      // A view of the bytes the client read (a fresh socket chunk it does not reuse), no copy.
      this.handler?.bytes(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      // Thrown into the client it would stop its reader.
      this.handler?.error(e, `NATS handler failed on ${subject}`);
    }
  }

  private drop(subject: string): void {
    const binding = this.bindings.get(subject);
    if (!binding) return;
    this.bindings.delete(subject);
    binding.sub.unsubscribe();
  }

  /** The connection, if sends and binds can go through now; else an `ERR_UNAVAILABLE` at once. */
  private live(): NatsConnection {
    if (this.closing) throw new SwitchboardError('ERR_UNAVAILABLE', 'nats transport closed');
    if (!this.nc || !this.connected || this.nc.isClosed()) {
      throw new SwitchboardError('ERR_UNAVAILABLE', `NATS unavailable at ${this.where} (${this.nc ? 'reconnecting' : 'not connected'})`);
    }
    return this.nc;
  }

  /** The flush shared by every publish and SUB of this event-loop turn. */
  private confirm(): Promise<void> {
    this.batch ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        this.batch = undefined;
        // Lost the link this turn: what was buffered is dropped or sent late, never confirmed.
        if (!this.connected && !this.closing)
          reject(new SwitchboardError('ERR_UNAVAILABLE', `NATS unavailable at ${this.where} (connection lost)`));
        else this.flush(this.nc!).then(resolve, reject);
      });
    });
    return this.batch;
  }

  private flush(nc: NatsConnection): Promise<void> {
    return this.bounded(nc.flush(), 'flush').catch((err: unknown) => {
      throw err instanceof SwitchboardError
        ? err
        : new SwitchboardError('ERR_UNAVAILABLE', `NATS unavailable at ${this.where} (${this.scrub(err)})`, { cause: err });
    });
  }

  private bounded<T>(op: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new SwitchboardError(
              'ERR_UNAVAILABLE',
              `NATS unavailable at ${this.where} (no answer to ${what} within ${this.confirmTimeoutMs} ms)`,
            ),
          ),
        this.confirmTimeoutMs,
      );
    });
    op.catch(() => undefined); // rejected after the timeout won
    return Promise.race([op, timeout]).finally(() => clearTimeout(timer));
  }

  /** An error's message, without the URL's credentials. */
  private scrub(err: unknown): string {
    let text = redactNatsUrl(String((err as Error)?.message ?? err).replace(/\.$/, ''));
    for (const secret of this.secrets) text = text.split(secret).join('[REDACTED]');
    return text;
  }
}
