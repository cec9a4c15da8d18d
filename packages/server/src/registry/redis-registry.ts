import type { RedisClient } from '../redis/connect.js';
import { defineScripts, type ScriptCaller } from '../redis/scripts.js';
import type { NodeInfo, Registry, RegistryListener } from './registry.js';

/** Options of {@link RedisRegistry}. */
export interface RedisRegistryOptions {
  /** Command connection (injected and owned by the caller: `close()` does not quit it). */
  redis: RedisClient;
  /**
   * Subscriber connection for change events. May be shared with the broker's subscriber: the
   * registry subscribes to its own pub/sub channel only and ignores every other message. Not
   * shared with another RedisRegistry of the same prefix (the last listener gone, it
   * UNSUBSCRIBEs the change channel). Owned by the caller.
   */
  sub: RedisClient;
  /** Prefix of every key and pub/sub channel. Default `sb:`. */
  prefix?: string;
  /**
   * A node is live while its lease (renewed every third of this) has not lapsed. Also the bound
   * on how long a crashed node stays listed. Default 15000.
   */
  nodeLeaseMs?: number;
}

/*
 * Times come from Redis (`TIME`), never from the node, so that clock skew between nodes cannot
 * make a live node look expired. KEYS[1] = nodes hash, KEYS[2] = leases zset; the pub/sub
 * channel goes in ARGV because it is not a key (it shares the `{cluster}` tag anyway).
 */
const NOW_MS = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** ARGV: node, info JSON, lease ms, change channel. Writes info and lease; announces a (re)appearance. */
const RENEW_LUA = `${NOW_MS}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local added = redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
if added == 1 then redis.call('PUBLISH', ARGV[4], 'up|' .. ARGV[1]) end
return added`;

/** ARGV: node, info JSON. Rewrites the info of a node that is still listed (never resurrects one). */
const UPDATE_LUA = `if redis.call('ZSCORE', KEYS[2], ARGV[1]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0`;

/** ARGV: node, change channel. */
const REMOVE_LUA = `local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 then redis.call('PUBLISH', ARGV[2], 'down|' .. ARGV[1]) end
return removed`;

/**
 * ARGV: change channel. Drops lapsed leases atomically (so a node renewing at the same moment is
 * never dropped by a stale read), announces them, and returns the live nodes' info.
 */
const LIVE_LUA = `${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, node in ipairs(expired) do
  redis.call('ZREM', KEYS[2], node)
  redis.call('HDEL', KEYS[1], node)
end
if #expired > 0 then redis.call('PUBLISH', ARGV[1], 'expired|' .. #expired) end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local out = {}
for _, node in ipairs(live) do
  local info = redis.call('HGET', KEYS[1], node)
  if info then out[#out + 1] = info end
end
return out`;

interface ListenerState {
  /** Identity of the last list this listener was given; undefined before the first call. */
  last: string | undefined;
}

/**
 * Registry in Redis. Live nodes are a hash `<prefix>{cluster}:nodes` (node → NodeInfo JSON) and a
 * zset `<prefix>{cluster}:node-leases` (node → lease expiry, Redis clock). Each registered node
 * renews its lease every `nodeLeaseMs / 3`; a node whose lease lapses (it crashed or lost Redis)
 * is dropped by the next `nodes()` of any instance. Changes are announced on the pub/sub channel
 * `<prefix>{cluster}:registry`; listeners also poll every `nodeLeaseMs / 3`, since a dead node
 * announces nothing.
 *
 * `onChange` listeners are called soon after subscribing with the current live list, then each
 * time the set of live nodes changes (a node appears, goes, or restarts with a new `startedAt` or
 * `url`). Load changes (`update`) do not call listeners; read them with `nodes()`.
 */
export class RedisRegistry implements Registry {
  private readonly redis: RedisClient;
  private readonly scripts: Record<'registryRenew' | 'registryUpdate' | 'registryRemove' | 'registryLive', ScriptCaller>;
  private readonly sub: RedisClient;
  private readonly leaseMs: number;
  private readonly nodesKey: string;
  private readonly leasesKey: string;
  private readonly changeChannel: string;
  /** Nodes this instance registered, with their latest info (renewals rewrite it). */
  private readonly own = new Map<string, NodeInfo>();
  private readonly listeners = new Map<RegistryListener, ListenerState>();
  private renewTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Listeners want change events: the `message` handler is on. */
  private subscribed = false;
  /** The change channel's SUBSCRIBE succeeded. */
  private listening = false;
  private listenOp: Promise<void> | undefined;
  /** Serialises refreshes so listeners see lists in the order Redis produced them. */
  private refreshing: Promise<void> = Promise.resolve();
  private refreshQueued = false;
  private closed = false;

  constructor(options: RedisRegistryOptions) {
    const prefix = options.prefix ?? 'sb:';
    this.leaseMs = options.nodeLeaseMs ?? 15_000;
    if (!(this.leaseMs >= 30)) throw new RangeError('nodeLeaseMs must be at least 30');
    this.sub = options.sub;
    this.nodesKey = `${prefix}{cluster}:nodes`;
    this.leasesKey = `${prefix}{cluster}:node-leases`;
    this.changeChannel = `${prefix}{cluster}:registry`;
    this.redis = options.redis;
    this.scripts = defineScripts(options.redis, {
      registryRenew: { keys: 2, lua: RENEW_LUA },
      registryUpdate: { keys: 2, lua: UPDATE_LUA },
      registryRemove: { keys: 2, lua: REMOVE_LUA },
      registryLive: { keys: 2, lua: LIVE_LUA },
    });
  }

  /** True while the command connection is up and the registry is not closed. */
  get ready(): boolean {
    return !this.closed && this.redis.status === 'ready';
  }

  async register(info: NodeInfo): Promise<void> {
    if (this.closed) throw new Error('registry closed');
    this.own.set(info.node, { ...info });
    await this.renewOne(info.node);
    this.renewTimer ??= setInterval(() => this.renewAll(), Math.max(10, Math.floor(this.leaseMs / 3)));
    this.renewTimer.unref();
  }

  async update(info: NodeInfo): Promise<void> {
    // Like the memory registry: only a registered node has load figures to update.
    if (this.closed || !this.own.has(info.node)) return;
    this.own.set(info.node, { ...info });
    await this.scripts.registryUpdate(this.nodesKey, this.leasesKey, info.node, JSON.stringify(info));
  }

  async nodes(): Promise<NodeInfo[]> {
    const raw = (await this.scripts.registryLive(this.nodesKey, this.leasesKey, this.changeChannel)) as string[];
    const nodes: NodeInfo[] = [];
    for (const json of raw) {
      try {
        nodes.push(JSON.parse(json) as NodeInfo);
      } catch {
        // A value this version cannot read is not a node it can route to.
      }
    }
    return nodes.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  onChange(listener: RegistryListener): () => void {
    this.listeners.set(listener, { last: undefined });
    if (!this.closed) {
      this.watch();
      this.refresh();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.unwatch();
    };
  }

  /**
   * Removes this instance's nodes, tells the other instances, stops timers. Idempotent. Never
   * quits the injected connections.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = undefined;
    const nodes = [...this.own.keys()];
    this.own.clear();
    const removals = Promise.allSettled(
      nodes.map((node) => this.scripts.registryRemove(this.nodesKey, this.leasesKey, node, this.changeChannel)),
    );
    await removals;
    // Our own listeners learn about the removal too, like with the memory registry.
    if (this.listeners.size > 0 && this.redis.status === 'ready') {
      this.refresh();
      await this.refreshing;
    }
    this.listeners.clear();
    this.unwatch();
  }

  private async renewOne(node: string): Promise<void> {
    const info = this.own.get(node);
    if (!info) return;
    await this.scripts.registryRenew(this.nodesKey, this.leasesKey, node, JSON.stringify(info), this.leaseMs, this.changeChannel);
  }

  private renewAll(): void {
    // A failed renewal is retried by the next tick; if Redis stays away the lease lapses, which
    // is exactly what the other nodes should conclude.
    for (const node of this.own.keys()) void this.renewOne(node).catch(() => undefined);
  }

  // `messageBuffer`, not `message`: with a `message` listener ioredis would turn every payload on
  // the shared subscriber connection (the broker's too) into a string.
  private readonly onMessage = (channel: Buffer): void => {
    if (channel.toString('latin1') === this.changeChannel) this.refresh();
  };

  private watch(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(
      () => {
        this.listen();
        this.refresh();
      },
      Math.max(10, Math.floor(this.leaseMs / 3)),
    );
    this.pollTimer.unref();
    this.sub.on('messageBuffer', this.onMessage);
    this.subscribed = true;
    this.listen();
  }

  /**
   * SUBSCRIBEs the change channel unless done. Polling covers the time until it takes effect; a
   * SUBSCRIBE that failed (connection down) is retried by the next poll, since ioredis only
   * re-subscribes what had succeeded.
   */
  private listen(): void {
    if (!this.subscribed || this.listening || this.listenOp) return;
    this.listenOp = this.sub.subscribe(this.changeChannel).then(
      () => {
        this.listening = this.subscribed;
      },
      () => undefined,
    );
    void this.listenOp.finally(() => (this.listenOp = undefined));
  }

  private unwatch(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    if (!this.subscribed) return;
    this.subscribed = false;
    this.listening = false;
    this.sub.off('messageBuffer', this.onMessage);
    void this.sub.unsubscribe(this.changeChannel).catch(() => undefined);
  }

  /** Reads the live list and calls each listener whose last list differs. Coalesces bursts. */
  private refresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    this.refreshing = this.refreshing.then(async () => {
      this.refreshQueued = false;
      if (this.listeners.size === 0) return;
      let nodes: NodeInfo[];
      try {
        nodes = await this.nodes();
      } catch {
        return; // Redis unreachable: keep the last list; the poll tries again.
      }
      const identity = JSON.stringify(nodes.map((n) => [n.node, n.url, n.startedAt]));
      for (const [listener, state] of [...this.listeners]) {
        if (state.last === identity || !this.listeners.has(listener)) continue;
        state.last = identity;
        try {
          listener(nodes.map((n) => ({ ...n })));
        } catch {
          // A throwing listener must not stop the others or the poll.
        }
      }
    });
  }
}
