import { Redis, type RedisOptions } from 'ioredis';
import type { Broker } from './broker/broker.js';
import { MemoryBroker } from './broker/memory-broker.js';
import { RedisBroker } from './broker/redis-broker.js';
import type { History } from './history/history.js';
import { MemoryHistory } from './history/memory-history.js';
import { RedisHistory } from './history/redis-history.js';
import type { NodeOptions } from './options.js';
import { MemoryPresenceStore } from './presence/memory-presence-store.js';
import type { PresenceStore } from './presence/presence-store.js';
import { RedisPresenceStore } from './presence/redis-presence-store.js';
import { MemoryRegistry } from './registry/memory-registry.js';
import { RedisRegistry } from './registry/redis-registry.js';
import type { Registry } from './registry/registry.js';
import { RingHolder } from './registry/ring-holder.js';

/** The four seams a node runs on. The node never knows which implementations it has. */
export interface Engine {
  broker: Broker;
  presence: PresenceStore;
  history: History;
  registry: Registry;
  /** The hash ring of the live nodes, kept current by the node from registry events. */
  ring: RingHolder;
  /** Resolves once the backing services answer. @throws Error saying what is unreachable and how to fix it. */
  connect(): Promise<void>;
  /** Releases connections the engine opened (after the components are closed). */
  close(): Promise<void>;
}

/** How long `connect()` waits for Redis before giving up with a clear message. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * Builds the engine named by the options.
 * @throws Error for an engine or broker this build does not have (never falls back silently).
 */
export function createEngine(options: NodeOptions): Engine {
  switch (options.engine) {
    case 'memory':
      return memoryEngine(options);
    case 'redis':
      return redisEngine(options);
    default: {
      const never: never = options.engine;
      throw new Error(`unknown engine "${String(never)}"`);
    }
  }
}

function memoryEngine(options: NodeOptions): Engine {
  return {
    broker: new MemoryBroker(),
    presence: new MemoryPresenceStore(),
    history: new MemoryHistory({
      historySize: options.historySize,
      historyTtlMs: options.historyTtlMs,
      historyMetaTtlMs: options.historyMetaTtlMs,
      idempotencyWindowMs: options.idempotencyWindowMs,
    }),
    registry: new MemoryRegistry(),
    ring: new RingHolder(),
    connect: async () => undefined,
    close: async () => undefined,
  };
}

/**
 * Redis engine: one command connection (fail fast: no offline queue, so publishes answer
 * `unavailable` at once while Redis is down) and one subscriber connection shared by the broker
 * and the registry. ioredis reconnects both by itself and resubscribes every channel.
 */
function redisEngine(options: NodeOptions): Engine {
  const common: RedisOptions = {
    lazyConnect: true,
    connectionName: `switchboard:${options.nodeId}`,
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
  };
  // Auto-pipelining: commands issued in the same tick (appends of many sessions, presence reads)
  // leave in one write instead of one syscall each.
  const redis = new Redis(options.redisUrl, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, enableAutoPipelining: true });
  const sub = new Redis(options.redisUrl, { ...common, connectionName: `switchboard:${options.nodeId}:sub` });
  // Errors surface through `ready` (/readyz), metrics and failed publishes; ioredis would print them otherwise.
  redis.on('error', () => undefined);
  sub.on('error', () => undefined);
  const prefix = options.redisPrefix;
  const routing = options.routing;
  const redisBroker = options.broker === 'redis';
  const ring = new RingHolder();
  return {
    ring,
    broker: redisBroker ? new RedisBroker({ pub: redis, sub, prefix, routing, nodeId: options.nodeId, ring }) : new MemoryBroker(),
    presence: new RedisPresenceStore({ redis, prefix, presenceTtlMs: options.presenceTtlMs }),
    history: new RedisHistory({
      redis,
      prefix,
      historySize: options.historySize,
      historyTtlMs: options.historyTtlMs,
      historyMetaTtlMs: options.historyMetaTtlMs,
      idempotencyWindowMs: options.idempotencyWindowMs,
      // Append and publish in one Lua script, one round trip, when the broker is Redis too.
      publish: redisBroker,
      routing,
      ring,
    }),
    registry: new RedisRegistry({ redis, sub, prefix, nodeLeaseMs: options.presenceTtlMs }),
    async connect() {
      const where = redactRedisUrl(options.redisUrl);
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`Redis is not reachable at ${where} (REDIS_URL): start it, e.g. \`redis-server --daemonize yes\`, or point REDIS_URL at it`)),
          CONNECT_TIMEOUT_MS,
        ).unref(),
      );
      await Promise.race([Promise.all([redis.connect(), sub.connect()]), timeout]).catch((err: unknown) => {
        redis.disconnect();
        sub.disconnect();
        throw err instanceof Error && err.message.startsWith('Redis is not reachable')
          ? err
          : new Error(`Redis is not reachable at ${where} (REDIS_URL): ${(err as Error).message} Start it, e.g. \`redis-server --daemonize yes\`, or point REDIS_URL at it.`);
      });
    },
    async close() {
      await Promise.allSettled([redis.quit(), sub.quit()]);
      redis.disconnect();
      sub.disconnect();
    },
  };
}

/** A Redis URL without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:[REDACTED]@');
}
