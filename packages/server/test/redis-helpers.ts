/**
 * Redis for tests: a reachability check that fails in CI and skips locally, clients configured like
 * the engine factory's (fail fast, no offline queue), and a unique key prefix per fixture whose keys
 * are deleted with SCAN+DEL afterwards.
 *
 * Usage:
 * ```ts
 * import { redisSkip, RedisFixture } from './redis-helpers.js';
 * describe('RedisThing', { skip: redisSkip }, () => {
 *   const redis = new RedisFixture();
 *   after(() => redis.cleanup());
 *   it('…', async () => { const client = await redis.client(); … redis.prefix … });
 * });
 * ```
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

export const REDIS_HOST = process.env.SWITCHBOARD_TEST_REDIS_HOST ?? '127.0.0.1';
export const REDIS_PORT = Number(process.env.SWITCHBOARD_TEST_REDIS_PORT ?? 6379);

/** Options of every test client: the engine factory's fail-fast settings. */
export const TEST_CLIENT_OPTIONS: RedisOptions = {
  host: REDIS_HOST,
  port: REDIS_PORT,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 2000,
  retryStrategy: (times) => Math.min(times * 50, 500),
};

/** Resolves true when Redis answers PING within 2 s. */
export async function redisReachable(): Promise<boolean> {
  const client = new Redis({ ...TEST_CLIENT_OPTIONS, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const START_HINT = `start it with scripts/ensure-redis.sh (or: redis-server --daemonize yes --save '' --appendonly no)`;

/**
 * The `skip` value for Redis suites: undefined when Redis is up, else the reason. In CI
 * (`CI=true`) a missing Redis is an error instead, so a green run always ran the Redis tests.
 */
export const redisSkip: string | undefined = await (async () => {
  if (await redisReachable()) return undefined;
  const message = `Redis is not running on ${REDIS_HOST}:${REDIS_PORT}: ${START_HINT}`;
  if (process.env.CI === 'true') throw new Error(message);
  return message;
})();

/** A new client with the fail-fast options, resolved once it is ready. The caller quits it. */
export async function connectRedis(options: RedisOptions = {}): Promise<Redis> {
  const client = new Redis({ ...TEST_CLIENT_OPTIONS, ...options, lazyConnect: true });
  // An 'error' event without a listener is printed by ioredis; tests look at rejections instead.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Every key starting with `prefix` (a full SCAN, never KEYS). */
export async function keysWithPrefix(client: Redis, prefix: string): Promise<string[]> {
  const pattern = prefix.replace(/[*?[\]\\]/g, '\\$&') + '*';
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return [...new Set(found)]; // SCAN may return a key twice
}

/** Deletes every key starting with `prefix` (SCAN+UNLINK, never KEYS). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  const keys = await keysWithPrefix(client, prefix);
  for (let i = 0; i < keys.length; i += 500) await client.unlink(...keys.slice(i, i + 500));
}

/**
 * One test run's Redis namespace: a unique `prefix` (`sbtest:<uuid>:`) and the clients opened
 * through it. `cleanup()` deletes the prefix's keys and quits the clients.
 */
export class RedisFixture {
  readonly prefix = `sbtest:${randomUUID()}:`;
  private readonly clients: Redis[] = [];

  /** A ready client, quit by `cleanup()`. */
  async client(options: RedisOptions = {}): Promise<Redis> {
    const client = await connectRedis(options);
    this.clients.push(client);
    return client;
  }

  /** Deletes the prefix's keys and quits every client. Idempotent. */
  async cleanup(): Promise<void> {
    const clients = this.clients.splice(0);
    const admin = clients.find((c) => c.status === 'ready') ?? (await connectRedis().catch(() => undefined));
    if (admin) {
      await deletePrefix(admin, this.prefix).catch(() => undefined);
      if (!clients.includes(admin)) admin.disconnect();
    }
    await Promise.all(clients.map((c) => (c.status === 'ready' ? c.quit().catch(() => c.disconnect()) : c.disconnect())));
  }
}
