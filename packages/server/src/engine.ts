import type { Logger } from 'pino';
import type { Broker } from './broker/broker.js';
import { createBroker } from './broker/create-broker.js';
import type { MemoryBus } from './broker/memory-transport.js';
import { RedisTransport } from './broker/redis-transport.js';
import type { History } from './history/history.js';
import { MemoryHistory } from './history/memory-history.js';
import { RedisHistory } from './history/redis-history.js';
import { PostgresHistory } from './history/postgres-history.js';
import { MemoryAckStore, type AckStore } from './inbox/acks.js';
import { PostgresAckStore } from './inbox/postgres-acks.js';
import { RedisAckStore } from './inbox/redis-acks.js';
import { createLogger } from './logger.js';
import { MemoryOutbox, type WebhookOutbox } from './webhooks/outbox.js';
import { PostgresOutbox } from './webhooks/postgres-outbox.js';
import { RedisOutbox } from './webhooks/redis-outbox.js';
import { migrate } from './postgres/migrations.js';
import { connectPostgres, createPostgresPool } from './postgres/pool.js';
import type { NodeOptions } from './options.js';
import { MemoryPresenceStore } from './presence/memory-presence-store.js';
import type { PresenceStore } from './presence/presence-store.js';
import { RedisPresenceStore } from './presence/redis-presence-store.js';
import { AppendThenPublish, AtomicAppendPublish, type PublicationPath } from './publish/publication-path.js';
import { closeRedis, connectRedis, createRedisLinks, type RedisLinks } from './redis/connect.js';
import { MemoryRegistry, MemoryRoster } from './registry/memory-registry.js';
import { RedisRegistry } from './registry/redis-registry.js';
import type { Registry } from './registry/registry.js';
import { RingHolder } from './registry/ring-holder.js';

/** The four seams a node runs on, and the path a publication takes. The node never knows which implementations it has. */
export interface Engine {
  broker: Broker;
  presence: PresenceStore;
  history: History;
  /** Inbox acks, beside the history (with the inbox on). */
  acks: AckStore | undefined;
  /** The cluster's webhook queue, in the history's store. */
  outbox: WebhookOutbox;
  registry: Registry;
  /** How a publication leaves: appended, then published (or both in one step where one store does both). */
  publication: PublicationPath;
  /** The hash ring of the live nodes, kept current by the node from registry events. */
  ring: RingHolder;
  /** Resolves once the backing services answer. @throws RedisUnreachableError (or the broker's own) saying how to fix it. */
  connect(): Promise<void>;
  /**
   * Closes the components the engine made, then the connections it opened. Components given in
   * `EngineDeps.shared` belong to the caller and stay open.
   */
  close(): Promise<void>;
}

/** What an engine is built with besides the options. */
export interface EngineDeps {
  /** Where the engine logs link changes; a logger of its own when absent. */
  log?: Logger;
  /**
   * What several nodes in one process share to form a cluster on the memory engine (the
   * in-process cluster of the tests): the broker's bus, the list of live nodes, and one history
   * and presence store. Each is this node's own when absent.
   */
  shared?: { bus?: MemoryBus; roster?: MemoryRoster; history?: History; presence?: PresenceStore; acks?: AckStore };
  /** Told how long each broker publish took the backend to take (`switchboard_broker_publish_seconds`). */
  brokerPublished?: (seconds: number) => void;
}

/** The components of one engine kind, before the history, broker and publication path are chosen. */
interface Stores {
  presence: PresenceStore;
  registry: Registry;
  redis?: RedisLinks;
  connect(): Promise<void>;
  /** Closes what these stores made and opened. */
  close(): Promise<void>;
}

/** The history store named by `history` (and, with the inbox on, its acks beside it). */
interface HistoryStore {
  history: History;
  acks: AckStore | undefined;
  outbox: WebhookOutbox;
  connect(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Builds the engine named by the options: stores (`engine`), broker (`broker`, over the stores'
 * connections where it is the same backend) and publication path.
 * @throws Error for an engine or broker this build does not have (never falls back silently).
 */
export function createEngine(options: NodeOptions, deps: EngineDeps = {}): Engine {
  const log = deps.log ?? createLogger(options.nodeId, options.logLevel);
  const stores = createStores(options, deps, log);
  const kept = createHistory(options, deps, stores.redis, log);
  const ring = new RingHolder();
  const broker = createBroker(options.broker, {
    nodeId: options.nodeId,
    routing: options.routing,
    ring,
    bus: deps.shared?.bus,
    redis: stores.redis,
    redisPrefix: options.redisPrefix,
    amqpUrl: options.amqpUrl,
    natsUrl: options.natsUrl,
    published: deps.brokerPublished,
  });
  const { transport, router } = broker;
  // Redis history and Redis broker on one Redis: the append script publishes too (one round trip).
  const { history, acks, outbox } = kept;
  const publication =
    history instanceof RedisHistory && transport instanceof RedisTransport && atomicOnThisRedis(options)
      ? new AtomicAppendPublish(history, (channel) => router.destinations(channel).map((to) => transport.address(to)))
      : new AppendThenPublish(history, broker);
  return {
    presence: stores.presence,
    registry: stores.registry,
    history,
    acks,
    outbox,
    broker,
    publication,
    ring,
    async connect() {
      await stores.connect();
      await kept.connect();
    },
    async close() {
      await Promise.allSettled([broker.close(), stores.registry.close()]);
      await Promise.allSettled([kept.close(), stores.close()]);
    },
  };
}

function createStores(options: NodeOptions, deps: EngineDeps, log: Logger): Stores {
  switch (options.engine) {
    case 'memory': {
      const presence = deps.shared?.presence ?? new MemoryPresenceStore();
      return {
        presence,
        registry: new MemoryRegistry(deps.shared?.roster),
        connect: async () => undefined,
        async close() {
          if (!deps.shared?.presence) await presence.close();
        },
      };
    }
    case 'redis':
      return redisStores(options, log);
    default: {
      const never: never = options.engine;
      throw new Error(`unknown engine "${String(never)}": use memory or redis`);
    }
  }
}

/** The limits every history takes from the options (with the inbox's for `user:` channels when it is on). */
function historyOptions(options: NodeOptions) {
  return {
    historySize: options.historySize,
    historyTtlMs: options.historyTtlMs,
    historyMetaTtlMs: options.historyMetaTtlMs,
    idempotencyWindowMs: options.idempotencyWindowMs,
    inbox: options.inbox === 'on' ? { size: options.inboxSize, ttlMs: options.inboxRetentionMs } : undefined,
  };
}

/**
 * Whether the append script may publish too: on one Redis always; on a Redis Cluster a script
 * keeps to its channel's hash slot, so only with `interest` routing, where a channel's publications
 * go to the channel's own name (hash routing also names the owner node, broadcast one name for all).
 */
function atomicOnThisRedis(options: NodeOptions): boolean {
  return options.redisCluster !== 'on' || options.routing === 'interest';
}

/** How long an inbox ack outlives its last move: as long as the inbox's meta. */
function ackTtlMs(options: NodeOptions): number {
  return Math.max(options.historyMetaTtlMs, options.inboxRetentionMs);
}

function createHistory(options: NodeOptions, deps: EngineDeps, redis: RedisLinks | undefined, log: Logger): HistoryStore {
  const inbox = options.inbox === 'on';
  switch (options.history) {
    case 'memory': {
      const history = deps.shared?.history ?? new MemoryHistory(historyOptions(options));
      const acks = inbox ? (deps.shared?.acks ?? new MemoryAckStore(ackTtlMs(options))) : undefined;
      return {
        history,
        acks,
        outbox: new MemoryOutbox(),
        connect: async () => undefined,
        async close() {
          await Promise.allSettled([deps.shared?.history ? undefined : history.close(), deps.shared?.acks ? undefined : acks?.close()]);
        },
      };
    }
    case 'redis': {
      // resolveOptions makes sure: history redis needs engine redis.
      const links = redis!;
      const prefix = options.redisPrefix;
      const history = new RedisHistory({ redis: links.redis, prefix, ...historyOptions(options) });
      return {
        history,
        acks: inbox ? new RedisAckStore(links.redis, prefix, ackTtlMs(options)) : undefined,
        outbox: new RedisOutbox(links.redis, prefix),
        connect: async () => undefined,
        close: () => history.close(),
      };
    }
    case 'postgres': {
      const url = options.databaseUrl!;
      const pool = createPostgresPool({ url, name: options.nodeId, log });
      const history = new PostgresHistory({ pool, log, ...historyOptions(options) });
      return {
        history,
        acks: inbox ? new PostgresAckStore(pool) : undefined,
        outbox: new PostgresOutbox(pool),
        async connect() {
          await connectPostgres(pool, url);
          const { applied, version } = await migrate(pool);
          if (applied.length > 0) log.info({ applied, version }, 'PostgreSQL schema migrated');
        },
        async close() {
          await history.close();
          await pool.end().catch(() => undefined);
        },
      };
    }
    default: {
      const never: never = options.history;
      throw new Error(`unknown history "${String(never)}": use memory, redis or postgres`);
    }
  }
}

/**
 * Redis stores: one command connection (fail fast: no offline queue, so publishes answer
 * `unavailable` at once while Redis is down; auto-pipelined, so the commands of one tick leave in
 * one write) and one subscriber connection shared by the broker and the registry. ioredis
 * reconnects both by itself and re-subscribes every channel.
 */
function redisStores(options: NodeOptions, log: Logger): Stores {
  const links = createRedisLinks({
    url: options.redisUrl,
    name: options.nodeId,
    log,
    autoPipelining: true,
    cluster: options.redisCluster === 'on',
  });
  const { redis, sub } = links;
  const prefix = options.redisPrefix;
  const presence = new RedisPresenceStore({ redis, prefix, presenceTtlMs: options.presenceTtlMs });
  return {
    redis: links,
    presence,
    registry: new RedisRegistry({ redis, sub, prefix, nodeLeaseMs: options.presenceTtlMs }),
    connect: () => connectRedis(links, options.redisUrl, 'start it, e.g. `redis-server --daemonize yes`, or point REDIS_URL at it.'),
    async close() {
      await presence.close();
      await closeRedis(links);
    },
  };
}
