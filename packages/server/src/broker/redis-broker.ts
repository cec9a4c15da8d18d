import type { Redis } from 'ioredis';
import type { Broker, BrokerHandler, BrokerMessage } from './broker.js';
import type { RingHolder } from '../registry/ring-holder.js';
import { broadcastName, channelTag, decodePubsub, encodePubsub, nodeName, type Routing } from './redis-wire.js';

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /**
   * Command connection for PUBLISH. Injected and owned by the caller (`close()` does not quit it).
   * Create it with `enableOfflineQueue: false` and a small `maxRetriesPerRequest` so that a
   * publish in flight when Redis goes away fails instead of waiting for the reconnect.
   */
  pub: Redis;
  /**
   * Subscriber connection (it enters subscriber mode). Owned by the caller. It may be shared with
   * a `RedisRegistry`: the broker only handles its own pub/sub channels and leaves the others'
   * subscriptions alone; one RedisBroker per connection, though (`close()` unsubscribes its
   * channels). Keep ioredis' `autoResubscribe` on (the default): it restores the subscriptions
   * after a reconnect.
   */
  sub: Redis;
  /** Prefix of every pub/sub channel. Default `sb:`. */
  prefix?: string;
  /**
   * `interest` (default): one pub/sub channel per Switchboard channel, SUBSCRIBEd while this node
   * has sessions in it. `broadcast`: every node SUBSCRIBEs `<prefix>{cluster}:all` once and drops
   * the channels it has no sessions in (fewer subscriptions, more traffic per node).
   */
  routing?: Routing;
  /**
   * `hash` routing: this node's id (it SUBSCRIBEs its own `<prefix>{node:<id>}` channel) and the
   * ring naming each user's owner node. `user:` channels this node owns need no subscription of
   * their own; the others (sessions that landed off their owner) fall back to interest routing.
   */
  nodeId?: string;
  ring?: RingHolder;
  /** Told about a received payload that cannot be decoded (it is dropped). */
  onError?: (err: Error) => void;
}

/**
 * Broker over Redis pub/sub. Delivery is at-most-once: Redis pub/sub has no acknowledgements, so
 * a message published while a node's subscriber connection is down never reaches that node (ioredis
 * reconnects and re-subscribes by itself). Clients repair such gaps by recovery from history, the
 * offsets telling them what they missed. Per channel, messages from one publishing connection
 * arrive in publish order.
 *
 * `publish` rejects at once when the command connection is not ready, whatever the client's
 * offline-queue setting, so that a publisher never waits for Redis to come back.
 */
export class RedisBroker implements Broker {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly prefix: string;
  private readonly routing: Routing;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly allName: string;
  private handler: BrokerHandler | undefined;
  /** Channels this node receives. */
  private readonly channels = new Set<string>();
  /** Interest routing: pub/sub name → channel, for the names this broker subscribed. */
  private readonly names = new Map<string, string>();
  /** SUBSCRIBEs in flight, so that a repeated subscribe waits for the first one. */
  private readonly pending = new Map<string, Promise<void>>();
  /** Names whose UNSUBSCRIBE failed with the connection down; retried when it is back. */
  private readonly stale = new Set<string>();
  private started = false;
  private closed = false;
  /** Hash routing: this node's own pub/sub channel, and the ring. */
  private readonly ownName: string | undefined;
  private readonly ring: RingHolder | undefined;
  private readonly nodeId: string | undefined;
  private unwatchRing: (() => void) | undefined;

  constructor(options: RedisBrokerOptions) {
    this.pub = options.pub;
    this.sub = options.sub;
    this.prefix = options.prefix ?? 'sb:';
    this.routing = options.routing ?? 'interest';
    if (this.routing !== 'interest' && this.routing !== 'broadcast' && this.routing !== 'hash') throw new Error(`unknown routing "${String(this.routing)}"`);
    if (this.routing === 'hash' && (!options.nodeId || !options.ring)) throw new Error('hash routing needs nodeId and ring');
    this.nodeId = options.nodeId;
    this.ring = options.ring;
    this.ownName = this.routing === 'hash' ? nodeName(options.prefix ?? 'sb:', options.nodeId!) : undefined;
    this.onError = options.onError;
    this.allName = broadcastName(this.prefix);
  }

  /** True while both connections are ready and the broker is not closed. */
  get ready(): boolean {
    return !this.closed && this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  async start(handler: BrokerHandler): Promise<void> {
    if (this.closed) throw new Error('broker closed');
    this.handler = handler;
    if (this.started) return;
    this.started = true;
    this.sub.on('message', this.onMessage);
    this.sub.on('ready', this.onReady);
    if (this.routing === 'broadcast') await this.sub.subscribe(this.allName);
    if (this.ownName) {
      await this.sub.subscribe(this.ownName);
      this.unwatchRing = this.ring!.onChange(() => void this.reconcile());
    }
  }

  /** Hash routing: this node owns `channel`, so its own node channel already carries it. */
  private owns(channel: string): boolean {
    return this.routing === 'hash' && this.ring!.ownerOf(channel) === this.nodeId;
  }

  /**
   * Hash routing, after the ring changed: drop the interest subscription of user channels this node
   * now owns, and take one for those it no longer owns (their sessions are about to move; until
   * then they are served by interest).
   */
  private async reconcile(): Promise<void> {
    for (const channel of this.channels) {
      const name = channelTag(this.prefix, channel);
      const subscribed = this.names.has(name);
      if (this.owns(channel) && subscribed) {
        this.names.delete(name);
        await this.sub.unsubscribe(name).catch(() => this.stale.add(name));
      } else if (!this.owns(channel) && !subscribed) {
        this.names.set(name, channel);
        await this.sub.subscribe(name).catch((err: unknown) => this.onError?.(err as Error));
      }
    }
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed) return;
    const inFlight = this.pending.get(channel);
    if (inFlight) return inFlight;
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    // Broadcast routing already receives everything: the local set is the whole subscription.
    // With hash routing, an owned user channel arrives on this node's own channel.
    if (this.routing === 'broadcast' || this.owns(channel)) return;
    const name = channelTag(this.prefix, channel);
    this.names.set(name, channel);
    const op = this.sub.subscribe(name).then(
      () => undefined,
      (err: unknown) => {
        // Not subscribed after all: let the caller retry.
        if (this.names.get(name) === channel && this.pending.get(channel) === op) {
          this.channels.delete(channel);
          this.names.delete(name);
        }
        throw err;
      },
    );
    this.pending.set(channel, op);
    try {
      await op;
    } finally {
      if (this.pending.get(channel) === op) this.pending.delete(channel);
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    this.pending.delete(channel);
    if (this.routing === 'broadcast') return;
    const name = channelTag(this.prefix, channel);
    if (!this.names.delete(name)) return; // an owned channel (hash routing) had no subscription of its own
    // Sent after any SUBSCRIBE in flight for it (one connection keeps order), so it wins.
    try {
      await this.sub.unsubscribe(name);
    } catch (err) {
      // ioredis would re-subscribe it after the reconnect: drop it then (see onReady).
      this.stale.add(name);
      throw err;
    }
  }

  async publish(channel: string, message: BrokerMessage): Promise<void> {
    if (this.closed) throw new Error('broker closed');
    if (this.pub.status !== 'ready') throw new Error(`redis unavailable (connection ${this.pub.status})`);
    const { name, payload, also } = encodePubsub(this.prefix, this.routing, channel, message, this.routing === 'hash' ? this.ring?.ownerOf(channel) : undefined);
    if (!also) {
      await this.pub.publish(name, payload);
      return;
    }
    // Hash routing: to the owner node, and to sessions of the user that landed on other nodes.
    const results = await this.pub.pipeline().publish(name, payload).publish(also.name, also.payload).exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** Unsubscribes what this broker subscribed and stops delivery. Does not quit the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub.off('message', this.onMessage);
    this.sub.off('ready', this.onReady);
    this.unwatchRing?.();
    const names = this.routing === 'broadcast' ? (this.started ? [this.allName] : []) : [...this.names.keys()];
    if (this.ownName && this.started) names.push(this.ownName);
    this.channels.clear();
    this.names.clear();
    this.pending.clear();
    this.handler = undefined;
    // Best effort: with Redis down the connections are about to be quit by their owner anyway.
    if (names.length > 0 && this.sub.status === 'ready') await this.sub.unsubscribe(...names).catch(() => undefined);
  }

  private readonly onReady = (): void => {
    const names = [...this.stale].filter((name) => !this.names.has(name));
    this.stale.clear();
    if (names.length > 0) void this.sub.unsubscribe(...names).catch(() => names.forEach((n) => this.stale.add(n)));
  };

  private readonly onMessage = (name: string, payload: string): void => {
    const handler = this.handler;
    if (!handler) return;
    // Filter before decoding: a shared subscriber connection carries other components' channels.
    if (this.routing === 'broadcast' ? name !== this.allName : !this.names.has(name) && name !== this.ownName) return;
    let decoded: { channel: string; message: BrokerMessage };
    try {
      decoded = decodePubsub(this.prefix, name, payload);
    } catch (err) {
      this.onError?.(err as Error);
      return;
    }
    if (!this.channels.has(decoded.channel)) return;
    try {
      handler(decoded.channel, decoded.message);
    } catch (err) {
      // Thrown into ioredis' reply parser it would break the connection for every channel.
      this.onError?.(err as Error);
    }
  };
}
