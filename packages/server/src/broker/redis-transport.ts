import type { RedisClient } from '../redis/connect.js';
import { SwitchboardError } from '../errors.js';
import { channelTag, clusterAllName, nodeTag } from '../redis/keys.js';
import type { Destination, Transport, TransportHandler } from './transport.js';

/**
 * Sharded: how long ioredis's subscribers must stay re-subscribed before the link counts as back.
 * While a master fails over, ioredis tries its dead address again and again, each time losing and
 * "re-subscribing" its subscriber within milliseconds; one loss and one return are reported.
 */
const SHARDS_SETTLE_MS = 250;

/** Options of {@link RedisTransport}. */
export interface RedisTransportOptions {
  /**
   * Command connection for PUBLISH, owned by the caller (`close()` does not quit it). Create it
   * without an offline queue, so that a publish while Redis is away fails instead of waiting.
   */
  pub: RedisClient;
  /**
   * Subscriber connection, owned by the caller. It may be shared with a `RedisRegistry`: the
   * transport handles only the names it bound. Keep ioredis' `autoResubscribe` on (the default):
   * it restores the subscriptions after a reconnect.
   */
  sub: RedisClient;
  /** Prefix of every pub/sub name. @default 'sb:' */
  prefix?: string;
  /**
   * Sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH`), for a Redis Cluster: a name lives on the shard of
   * its hash slot, so a publication crosses that shard only instead of the whole cluster bus.
   * `sub` must be a cluster client made with `shardedSubscribers: true`. @default false
   */
  sharded?: boolean;
}

/**
 * Transport over Redis pub/sub: a destination is a pub/sub name (a channel's is its key tag, so
 * that the append script's PUBLISH shares the channel's slot). Delivery is at-most-once: Redis
 * pub/sub has no acknowledgement, so what is published while a node's subscriber connection is
 * down never reaches it; sessions fill such holes from history by offset. Per name, messages from
 * one connection arrive in publish order. The subscriber connection's state is the link's: lost
 * when it closes, back (subscriptions re-sent by ioredis) when it is ready again. Sharded (a
 * Redis Cluster), ioredis keeps one subscriber per master and re-sends its names after a failover:
 * the link is lost when one of them goes, and back once ioredis says they are all re-subscribed.
 */
export class RedisTransport implements Transport {
  readonly name = 'redis';
  private readonly pub: RedisClient;
  private readonly sub: RedisClient;
  private readonly prefix: string;
  private readonly sharded: boolean;
  private handler: TransportHandler | undefined;
  /** Names bound, and SUBSCRIBEs in flight. */
  private readonly names = new Map<string, Promise<void> | true>();
  /** Names whose UNSUBSCRIBE could not be sent; ioredis would restore them: dropped when the link is back. */
  private readonly stale = new Set<string>();
  private started = false;
  private closed = false;
  private linkUp = true;
  /** Sharded: pending report of the link back, until the subscribers have settled. */
  private settling: NodeJS.Timeout | undefined;

  constructor(options: RedisTransportOptions) {
    this.pub = options.pub;
    this.sub = options.sub;
    this.prefix = options.prefix ?? 'sb:';
    this.sharded = options.sharded ?? false;
  }

  get ready(): boolean {
    return !this.closed && this.pub.status === 'ready' && this.sub.status === 'ready';
  }

  /** The pub/sub name of a destination (the append script publishes to it too). */
  address(to: Destination): string {
    switch (to.kind) {
      case 'channel':
        return channelTag(this.prefix, to.channel);
      case 'node':
        return nodeTag(this.prefix, to.node);
      case 'all':
        return clusterAllName(this.prefix);
    }
  }

  async start(handler: TransportHandler): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.handler = handler;
    if (this.started) return;
    this.started = true;
    this.sub.on(this.sharded ? 'smessageBuffer' : 'messageBuffer', this.onMessage);
    this.sub.on('ready', this.onReady);
    this.sub.on('close', this.onClose);
    if (this.sharded) {
      this.sub.on('-subscriber', this.onShardLost);
      this.sub.on('subscribersReady', this.onShardsReady);
    }
    this.linkUp = this.sub.status === 'ready';
  }

  async bind(to: Destination): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    const name = this.address(to);
    const state = this.names.get(name);
    if (state === true) return;
    if (state) return state;
    if (this.sub.status !== 'ready')
      throw new SwitchboardError('ERR_UNAVAILABLE', `redis unavailable (subscriber connection ${this.sub.status})`);
    this.stale.delete(name);
    const op = (this.sharded ? this.sub.ssubscribe(name) : this.sub.subscribe(name)).then(
      () => {
        if (this.names.get(name) === op) this.names.set(name, true);
      },
      (err: unknown) => {
        if (this.names.get(name) === op) this.names.delete(name);
        throw err;
      },
    );
    this.names.set(name, op);
    return op;
  }

  async unbind(to: Destination): Promise<void> {
    const name = this.address(to);
    if (!this.names.delete(name)) return;
    // Sent after any SUBSCRIBE in flight for it (one connection keeps order), so it wins.
    if (this.sub.status === 'ready') {
      try {
        await this.unsubscribe([name]);
        return;
      } catch {
        // Fall through: dropped once the link is back.
      }
    }
    this.stale.add(name);
  }

  async send(to: readonly Destination[], payload: Buffer): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    if (this.pub.status !== 'ready') throw new SwitchboardError('ERR_UNAVAILABLE', `redis unavailable (connection ${this.pub.status})`);
    if (to.length === 1) {
      await this.publish(this.address(to[0]!), payload);
      return;
    }
    // Auto-pipelined on the engine's connection: one write for every destination (per shard).
    await Promise.all(to.map((d) => this.publish(this.address(d), payload)));
  }

  /** Unsubscribes what this transport bound and stops delivery. Does not quit the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sub.off(this.sharded ? 'smessageBuffer' : 'messageBuffer', this.onMessage);
    this.sub.off('ready', this.onReady);
    this.sub.off('close', this.onClose);
    this.sub.off('-subscriber', this.onShardLost);
    this.sub.off('subscribersReady', this.onShardsReady);
    clearTimeout(this.settling);
    const names = [...this.names.keys()];
    this.names.clear();
    this.handler = undefined;
    // Best effort: with Redis down the connections are about to be quit by their owner anyway.
    if (names.length > 0 && this.sub.status === 'ready') await this.unsubscribe(names).catch(() => undefined);
  }

  private publish(name: string, payload: Buffer): Promise<unknown> {
    return this.sharded ? this.pub.spublish(name, payload) : this.pub.publish(name, payload);
  }

  /** Sharded, one name per command: names of other slots live on other shards. */
  private async unsubscribe(names: readonly string[]): Promise<void> {
    if (!this.sharded) {
      await this.sub.unsubscribe(...names);
      return;
    }
    await Promise.all(names.map((name) => this.sub.sunsubscribe(name)));
  }

  private readonly onClose = (): void => {
    if (!this.linkUp) return;
    this.linkUp = false;
    this.handler?.link('down', 'Redis subscriber connection closed');
  };

  private readonly onReady = (): void => {
    if (!this.linkUp) {
      this.linkUp = true;
      this.handler?.link('up', `Redis subscriber connection ready, ${this.names.size} subscriptions re-sent`);
    }
    const names = [...this.stale].filter((name) => !this.names.has(name));
    this.stale.clear();
    if (names.length === 0) return;
    this.unsubscribe(names).catch((err: unknown) => {
      for (const n of names) this.stale.add(n);
      this.handler?.error(err, 'dropping stale Redis subscriptions failed');
    });
  };

  private readonly onShardLost = (): void => {
    clearTimeout(this.settling);
    this.settling = undefined;
    if (!this.linkUp) return;
    this.linkUp = false;
    this.handler?.link('down', 'a Redis Cluster shard subscriber was lost');
  };

  private readonly onShardsReady = (): void => {
    if (this.linkUp) return;
    clearTimeout(this.settling);
    this.settling = setTimeout(() => {
      this.settling = undefined;
      if (this.sub.status === 'ready') this.onReady();
    }, SHARDS_SETTLE_MS);
  };

  private readonly onMessage = (name: Buffer, payload: Buffer): void => {
    // Filter before anything else: a shared subscriber connection carries other components' names.
    if (!this.names.has(name.toString('latin1'))) return;
    this.handler?.bytes(payload);
  };
}
