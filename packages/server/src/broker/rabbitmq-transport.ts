import type { Socket } from 'node:net';
import { Connection, type AsyncMessage, type Channel } from 'rabbitmq-client';
import { SwitchboardError } from '../errors.js';
import { BrokerUnreachableError } from './broker-unreachable.js';
import { TurnCork } from './turn-cork.js';
import type { Destination, Transport, TransportHandler } from './transport.js';

/** How long {@link RabbitMqTransport.connect} waits for RabbitMQ at start-up by default. */
export const AMQP_CONNECT_TIMEOUT_MS = 5000;
/** The longest a handled delivery waits for its ack (see `deliver`). */
const ACK_DELAY_MS = 10;

const HINT =
  'start RabbitMQ (scripts/ensure-rabbitmq.sh; Debian: apt-get install rabbitmq-server), or set AMQP_URL (amqp://user:password@host:5672/vhost) to a broker whose user and vhost accept this node';

/** An AMQP URL without its password (`amqp://user:[REDACTED]@host/vhost`), for messages and logs. */
export function redactAmqpUrl(url: string): string {
  // Greedy to the last `@`: a password with a raw `@` in it is hidden whole (over-redacting is harmless).
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):.*@/is, '$1:[REDACTED]@');
}

/** Options of {@link RabbitMqTransport}. */
export interface RabbitMqTransportOptions {
  /** `AMQP_URL`: `amqp[s]://user:password@host:port/vhost`. The transport opens and owns its connection. */
  url: string;
  /** This node's id: its queue is `<prefix>node.<nodeId>`, its own address the routing key `node.<nodeId>`. */
  nodeId: string;
  /** Prefix of the exchange (`<prefix>cluster`) and queue names. @default 'sb.' */
  prefix?: string;
  /** The queue's `x-expires`: RabbitMQ deletes it once it has had no consumer this long (the node is gone for good). @default 60000 */
  queueExpiresMs?: number;
  /** The queue's `x-max-length`: what a node that is away can find waiting; the oldest go first, sessions fill holes from History. @default 100000 */
  maxBacklog?: number;
  /** Consumer prefetch: deliveries RabbitMQ may have unacknowledged on this node at once. @default 1000 */
  prefetch?: number;
  /** How long `send` waits for the publisher confirm, and `bind` for RabbitMQ's answer, before it rejects. @default 2000 */
  confirmTimeoutMs?: number;
  /** Longest pause between two reconnect attempts (exponential backoff from 100 ms). @default 5000 */
  reconnectMaxMs?: number;
  /** How long `connect` (and `start`) waits for RabbitMQ. @default 5000 */
  connectTimeoutMs?: number;
  /**
   * Channels for binds and unbinds, each routing key always on the same one (so its bind and
   * unbind keep their order). A channel has one method in flight at a time, and each answer waits
   * for a turn of this node's event loop: on a busy node, one channel did ~5 binds a second. @default 16
   */
  topologyChannels?: number;
}

/**
 * Transport over RabbitMQ (AMQP 0-9-1, `rabbitmq-client`): every node publishes to one durable
 * `direct` exchange and consumes its own queue, bound with one routing key per destination
 * (`ch.<channel>`, `node.<id>`, `all`). A direct exchange matches keys exactly, so the `*`, `#` and
 * `.` of channel names are plain characters. Delivery is at-least-once: publisher confirms on
 * send, manual acks after the handler returned; what is published while a node is away waits in
 * its queue, and repeats are dropped by the receiver by (channel, epoch, offset).
 *
 * The queue is a classic durable queue, not a quorum queue: quorum queues replicate through a Raft
 * log (and do take `x-expires` in 3.10), which buys nothing on a single RabbitMQ node and costs
 * latency and disk writes on every message of what is a fan-out feed, History being the record.
 * Messages are transient for the same reason: a broker restart loses the queued ones, not the
 * topology. The client reconnects the socket; this class declares its topology again on every new
 * connection, restores the bindings it holds and drops those unbound while the link was down.
 * Publishing has a connection of its own, as RabbitMQ advises: when its queues fall behind,
 * RabbitMQ throttles a publishing connection by no longer reading from it, which on a shared
 * connection also held back the consumer's acks and `queue.bind` — under the 5,000-connection soak
 * every delivery stopped at the prefetch limit and new sessions waited forever for their bind.
 * Binds and unbinds have a connection of their own too, spread over `topologyChannels` channels:
 * a channel has one method in flight, and each answer waits for a turn of this node's event
 * loop, so on one channel a busy node bound about 5 keys a second and its sessions' binds queued
 * for seconds, while RabbitMQ itself answered another client's binds in milliseconds.
 * A node id is one process: its first start deletes a queue an earlier run left (if unconsumed),
 * and it consumes exclusively, so a second process with the same id fails to start.
 */
export class RabbitMqTransport implements Transport {
  readonly name = 'rabbitmq';
  /** The exchange every node publishes to. */
  readonly exchange: string;
  /** This node's queue. */
  readonly queue: string;
  private readonly o: Required<RabbitMqTransportOptions>;
  /** The URL without its password: the only form that goes into messages. */
  private readonly where: string;
  /** Consuming and acks. */
  private conn: Connection | undefined;
  /** Publishing only (see the class comment). */
  private pubConn: Connection | undefined;
  /** Declares, binds and unbinds (see the class comment). */
  private topoConn: Connection | undefined;
  private handler: TransportHandler | undefined;
  /**
   * Consuming and acks (`ch`), topology (`topo`, on a connection of its own) and publishing in
   * confirm mode (`pub`, so a failed publish cannot close the consumer).
   */
  private ch: Channel | undefined;
  private topo: Channel[] = [];
  private pub: Channel | undefined;
  /** The latest delivery handled and not yet acked, on `ch`, and how many are due with it (see `deliver`). */
  private ackDue: { ch: Channel; tag: number } | undefined;
  private acksDue = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private consumerTag = '';
  /** Routing keys bound, and binds in flight. */
  private readonly keys = new Map<string, Promise<void> | true>();
  /** Keys unbound while the link was down: the durable queue kept them, so the next setup drops them. */
  private readonly stale = new Set<string>();
  private setting: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private lastError = '';
  private up = false;
  private linkDown = false;
  private started = false;
  private closed = false;
  /** A turn's publications in one write; the client counts a corked socket as not ready, so `corked` stands in. */
  private readonly pubCork = new TurnCork(() => (this.pubConn as unknown as { _socket?: Socket } | undefined)?._socket);

  constructor(options: RabbitMqTransportOptions) {
    let protocol: string;
    try {
      protocol = new URL(options.url).protocol;
    } catch {
      // Not the URL error itself: it carries the URL, password included.
      throw new Error(`AMQP_URL is not a valid URL: ${redactAmqpUrl(options.url)}`);
    }
    if (protocol !== 'amqp:' && protocol !== 'amqps:') throw new Error(`AMQP_URL must start with amqp:// or amqps://, not ${protocol}//`);
    this.o = {
      url: options.url,
      nodeId: options.nodeId,
      prefix: options.prefix ?? 'sb.',
      queueExpiresMs: options.queueExpiresMs ?? 60_000,
      maxBacklog: options.maxBacklog ?? 100_000,
      prefetch: options.prefetch ?? 1000,
      confirmTimeoutMs: options.confirmTimeoutMs ?? 2000,
      reconnectMaxMs: options.reconnectMaxMs ?? 5000,
      connectTimeoutMs: options.connectTimeoutMs ?? AMQP_CONNECT_TIMEOUT_MS,
      topologyChannels: Math.max(1, options.topologyChannels ?? 16),
    };
    this.where = redactAmqpUrl(options.url);
    this.exchange = `${this.o.prefix}cluster`;
    this.queue = `${this.o.prefix}node.${options.nodeId}`;
  }

  get ready(): boolean {
    return !this.closed && this.up && this.connected && this.pub?.active === true;
  }

  /** The three connections are up (the publishing one was when this turn's first publication corked it). */
  private get connected(): boolean {
    return this.conn?.ready === true && (this.pubCork.corked || this.pubConn?.ready === true) && this.topoConn?.ready === true;
  }

  /** The routing key of a destination. */
  routingKey(to: Destination): string {
    switch (to.kind) {
      case 'channel':
        return `ch.${to.channel}`;
      case 'node':
        return `node.${to.node}`;
      case 'all':
        return 'all';
    }
  }

  /**
   * Opens the connection and waits until RabbitMQ accepts it: the start-up step (`start` runs it too).
   * @throws BrokerUnreachableError naming `AMQP_URL` and how to fix it, after `connectTimeoutMs` at most.
   */
  async connect(): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    const conns = [
      (this.conn ??= this.open('consume')),
      (this.pubConn ??= this.open('publish')),
      (this.topoConn ??= this.open('topology')),
    ];
    if (conns.every((c) => c.ready)) return;
    try {
      await Promise.all(conns.map((c) => c.onConnect(this.o.connectTimeoutMs, true)));
    } catch {
      // close() took them already: the client's close() on a closing connection never resolves.
      if (this.conn !== conns[0]) throw new Error('transport closed');
      this.conn = this.pubConn = this.topoConn = undefined;
      await Promise.allSettled(conns.map((c) => c.close()));
      throw new BrokerUnreachableError(
        `RabbitMQ is not reachable at ${this.where} (AMQP_URL) after ${this.o.connectTimeoutMs} ms: ${this.lastError || 'no answer'}. To fix: ${HINT}`,
      );
    }
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.handler = handler;
    if (this.started) return;
    await this.connect();
    this.started = true;
    try {
      await this.runSetup(true);
    } catch (err) {
      // No setup behind the caller's back on a later reconnect: it was told start failed.
      this.started = false;
      throw err;
    }
  }

  async bind(to: Destination): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    const key = this.routingKey(to);
    const state = this.keys.get(key);
    if (state === true) return;
    if (state) return this.awaitBind(state);
    const ch = this.topoFor(key);
    if (!this.ready || !ch) throw this.unavailable('bind');
    this.stale.delete(key);
    const op = ch.queueBind(this.binding(key)).then(
      () => {
        if (this.keys.get(key) === op) this.keys.set(key, true);
      },
      (err: unknown) => {
        if (this.keys.get(key) === op) this.keys.delete(key);
        // RabbitMQ may have bound it before the link went.
        if (!this.keys.has(key)) this.stale.add(key);
        throw this.unavailable('bind', err);
      },
    );
    this.keys.set(key, op);
    // The caller stops waiting after confirmTimeoutMs; the bind goes on, and a caller that asks
    // again meanwhile waits for this one instead of sending RabbitMQ another.
    return this.awaitBind(op);
  }

  async unbind(to: Destination): Promise<void> {
    const key = this.routingKey(to);
    if (!this.keys.delete(key)) return;
    const ch = this.topoFor(key);
    if (this.up && ch?.active) {
      try {
        // After any bind in flight for it: the key's channel runs its methods in order.
        await this.within(ch.queueUnbind(this.binding(key)), 'queue.unbind');
        return;
      } catch {
        // The link went: dropped by the next setup.
      }
    }
    if (!this.closed && !this.keys.has(key)) this.stale.add(key);
  }

  async send(to: readonly Destination[], payload: Buffer): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    const pub = this.pub;
    // Checked first: the client would wait for a reconnect instead of failing.
    if (!this.ready || !pub) throw this.unavailable('publish');
    const [first, ...rest] = to.map((d) => this.routingKey(d));
    if (first === undefined) return;
    this.pubCork.cork();
    // One publish, the other keys in CC: a queue bound to several of them gets one copy.
    const confirmed = pub.basicPublish(
      { exchange: this.exchange, routingKey: first, ...(rest.length > 0 ? { headers: { CC: rest } } : {}) },
      payload,
    );
    try {
      await this.within(confirmed, 'publisher confirm');
    } catch (err) {
      throw this.unavailable('publish', err);
    }
  }

  /** A bind in flight, waited for at most `confirmTimeoutMs` (it goes on after that). */
  private awaitBind(op: Promise<void>): Promise<void> {
    return this.within(op, 'queue.bind').catch((err: unknown) => {
      throw err instanceof SwitchboardError ? err : this.unavailable('bind', err);
    });
  }

  /** `op`, or a rejection once it has taken `confirmTimeoutMs`: a broker that stops answering is an error, not a wait. */
  private async within<T>(op: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${this.o.confirmTimeoutMs} ms`)), this.o.confirmTimeoutMs);
    });
    try {
      return await Promise.race([op, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops consuming, drops this node's bindings (bounded: the queue goes with `x-expires` anyway), closes the connection. Deletes nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    // What was handled is acked, so that a restart of this node is not sent it again.
    this.ack();
    this.handler = undefined;
    clearTimeout(this.retryTimer);
    const { ch, topo, pub, conn, pubConn, topoConn } = this;
    const keys = [...this.keys.keys()];
    this.keys.clear();
    this.stale.clear();
    const dropped = Promise.all([
      this.consumerTag && ch?.active ? ch.basicCancel(this.consumerTag) : undefined,
      ...keys.map((routingKey) => {
        const c = this.topoFor(routingKey);
        return c?.active ? c.queueUnbind(this.binding(routingKey)) : undefined;
      }),
    ]);
    await Promise.race([dropped, new Promise((resolve) => setTimeout(resolve, 2000).unref())]).catch(() => undefined);
    this.ch = this.pub = this.conn = this.pubConn = this.topoConn = undefined;
    this.topo = [];
    await Promise.allSettled([ch?.close(), ...topo.map((c) => c.close()), pub?.close()]);
    await Promise.allSettled([conn?.close(), pubConn?.close(), topoConn?.close()]);
  }

  private open(role: 'consume' | 'publish' | 'topology'): Connection {
    const conn = new Connection({
      url: this.o.url,
      connectionName: role === 'consume' ? `switchboard:${this.o.nodeId}` : `switchboard:${this.o.nodeId}:${role}`,
      connectionTimeout: this.o.connectTimeoutMs,
      acquireTimeout: this.o.connectTimeoutMs,
      // A dead peer is noticed in about 20 s rather than 2 min (a `?heartbeat=` in the URL wins).
      heartbeat: 10,
      frameMax: 131_072,
      // Nagle's algorithm held each publish behind the previous one's TCP ack (RabbitMQ delays its
      // acks up to 40 ms): back-to-back publishes were confirmed 40 ms apart, ~25 a second.
      noDelay: true,
      retryLow: 100,
      retryHigh: this.o.reconnectMaxMs,
    });
    // The client emits the first error of each outage; without a listener it would throw.
    conn.on('error', (err: unknown) => (this.lastError = describe(err)));
    conn.on('connection', () => {
      this.lastError = '';
      if (this.started && !this.closed) void this.runSetup();
    });
    return conn;
  }

  /** Runs one setup; after a failure, retries while the connection is up (a new connection runs one itself). */
  private runSetup(first = false): Promise<void> {
    if (this.setting) return this.setting;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const run = this.setup(first).then(
      () => void (this.attempts = 0),
      (err: unknown) => {
        this.dropChannels();
        if (this.closed) return;
        if (first)
          throw new BrokerUnreachableError(
            `RabbitMQ at ${this.where} (AMQP_URL) refused the topology of node ${this.o.nodeId}: ${describe(err)}`,
          );
        if (this.attempts++ === 0) this.handler?.error(err, `rabbitmq setup of ${this.queue} failed; retrying`);
        if (this.connected) this.retryTimer = setTimeout(() => void this.runSetup(), this.backoff());
      },
    );
    this.setting = run.finally(() => (this.setting = undefined));
    return this.setting;
  }

  private async setup(first: boolean): Promise<void> {
    const { conn, pubConn, topoConn } = this;
    if (!conn || !pubConn || !topoConn || this.closed) throw new Error('transport closed');
    const topo = await topoConn.acquire();
    this.topo = [topo];
    await topo.exchangeDeclare({ exchange: this.exchange, type: 'direct', durable: true });
    if (first) {
      // A queue left by an earlier run of this node id holds bindings and messages of sessions
      // that are gone. If-unused: one with a consumer means another process has this node id.
      await topo.queueDelete({ queue: this.queue, ifUnused: true }).catch((err: unknown) => {
        throw new Error(`queue ${this.queue} has a consumer: is another node running with id ${this.o.nodeId}? (${describe(err)})`);
      });
    }
    await topo.queueDeclare({
      queue: this.queue,
      durable: true,
      arguments: { 'x-expires': this.o.queueExpiresMs, 'x-max-length': this.o.maxBacklog },
    });
    for (let i = 1; i < this.o.topologyChannels; i++) this.topo.push(await topoConn.acquire());
    const on = (key: string) => this.topoFor(key)!;
    const restored = [...this.keys].filter(([, state]) => state === true).map(([key]) => key);
    const stale = [...this.stale];
    await Promise.all([
      ...restored.map((routingKey) => on(routingKey).queueBind(this.binding(routingKey))),
      ...stale.filter((key) => !this.keys.has(key)).map((routingKey) => on(routingKey).queueUnbind(this.binding(routingKey))),
    ]);
    for (const key of stale) this.stale.delete(key);
    const ch = (this.ch = await conn.acquire());
    await ch.basicQos({ prefetchCount: this.o.prefetch });
    // Exclusive: a second process with this node id would otherwise share the deliveries.
    this.consumerTag = (await ch.basicConsume({ queue: this.queue, exclusive: true }, (msg) => this.deliver(ch, msg))).consumerTag;
    const pub = (this.pub = await pubConn.acquire());
    this.pubCork.onDrain();
    await pub.confirmSelect();
    if (!ch.active || !this.topo.every((c) => c.active) || !pub.active || this.closed) throw new Error('channel closed during setup');
    ch.once('close', () => this.lost(ch, 'channel closed'));
    ch.once('basic.cancel', () => this.lost(ch, `consumer of ${this.queue} cancelled by RabbitMQ (queue deleted?)`));
    for (const c of this.topo) c.once('close', () => this.lost(c, 'topology channel closed'));
    pub.once('close', () => this.lost(pub, 'publisher channel closed'));
    this.up = true;
    if (this.linkDown) {
      this.linkDown = false;
      this.handler?.link('up', `RabbitMQ link back at ${this.where}: ${this.queue} declared, ${this.keys.size} bindings restored`);
    }
  }

  private deliver(ch: Channel, msg: AsyncMessage): void {
    // Not acked: RabbitMQ delivers it again on the next channel (or keeps it, after close).
    if (this.closed || ch !== this.ch) return;
    const body: unknown = msg.body;
    try {
      this.handler?.bytes(Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));
    } catch (err) {
      // Acked anyway: a payload that breaks the handler would otherwise come back forever.
      this.handler?.error(err, 'rabbitmq delivery handler failed');
    }
    // Deliveries come and are handled in order on one channel: one ack with `multiple` covers
    // every delivery before it, sent once a quarter of the prefetch is due or ACK_DELAY_MS after
    // the first (an ack frame per turn was a tenth of a receiving node's time, in writes).
    this.ackDue = { ch, tag: msg.deliveryTag };
    if (++this.acksDue >= Math.max(1, this.o.prefetch >> 2)) this.ack();
    else this.ackTimer ??= setTimeout(this.ack, ACK_DELAY_MS);
  }

  private readonly ack = (): void => {
    const due = this.ackDue;
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.ackDue = undefined;
    this.acksDue = 0;
    // The channel went: RabbitMQ redelivers what was not acked, the receiver drops the repeats.
    if (!due || due.ch !== this.ch || !due.ch.active) return;
    try {
      due.ch.basicAck({ deliveryTag: due.tag, multiple: true });
    } catch {
      // As above.
    }
  };

  private lost(ch: Channel, detail: string): void {
    if (this.closed || (ch !== this.ch && !this.topo.includes(ch) && ch !== this.pub)) return;
    const connectionUp = this.connected;
    this.dropChannels();
    if (!this.linkDown) {
      this.linkDown = true;
      // A microtask later: the client emits the reason after it closed the channels.
      queueMicrotask(() =>
        this.handler?.link(
          'down',
          `RabbitMQ link lost at ${this.where} (${connectionUp ? detail : 'connection lost'}${this.lastError ? `: ${this.lastError}` : ''})`,
        ),
      );
    }
    // A channel closed on a live connection (its queue deleted, say) gets a new setup; a lost connection gets one when the client is back.
    clearTimeout(this.retryTimer);
    if (connectionUp) this.retryTimer = setTimeout(() => void this.runSetup(), this.backoff());
  }

  private dropChannels(): void {
    const { ch, topo, pub } = this;
    this.up = false;
    this.ch = this.pub = undefined;
    this.topo = [];
    clearTimeout(this.ackTimer);
    this.ackTimer = this.ackDue = undefined;
    this.acksDue = 0;
    this.consumerTag = '';
    for (const c of [ch, ...topo, pub]) if (c?.active) void c.close().catch(() => undefined);
  }

  /** The arguments of `queue.bind` and `queue.unbind` for `routingKey` on this node's queue. */
  private binding(routingKey: string): { queue: string; exchange: string; routingKey: string } {
    return { queue: this.queue, exchange: this.exchange, routingKey };
  }

  /** The topology channel of `key` (none while the link is down). */
  private topoFor(key: string): Channel | undefined {
    if (this.topo.length <= 1) return this.topo[0];
    let h = 0;
    for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
    return this.topo[(h >>> 0) % this.topo.length];
  }

  private backoff(): number {
    return Math.min(100 * 2 ** this.attempts, this.o.reconnectMaxMs);
  }

  private unavailable(what: string, err?: unknown): SwitchboardError {
    const why = err === undefined ? 'link down' : describe(err);
    return new SwitchboardError(
      'ERR_UNAVAILABLE',
      `rabbitmq ${what} failed at ${this.where}: ${why}`,
      err === undefined ? undefined : { cause: err },
    );
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
