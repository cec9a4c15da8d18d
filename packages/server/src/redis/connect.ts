import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ServiceUnreachableError } from '../service-unreachable.js';

/** How long {@link connectRedis} waits for Redis before giving up with a clear message. */
export const REDIS_CONNECT_TIMEOUT_MS = 5000;

/** Thrown when Redis does not answer at start-up. The message names `REDIS_URL` and how to fix it. */
export class RedisUnreachableError extends ServiceUnreachableError {
  constructor(message: string) {
    super('ERR_REDIS_UNREACHABLE', message);
  }
}

/** A Redis URL without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:[REDACTED]@');
}

/** The two connections a Redis component set needs. */
export interface RedisLinks {
  /** Commands; fails fast (no offline queue) so that callers answer `unavailable` at once. */
  redis: Redis;
  /** Pub/sub (subscriber mode); ioredis re-subscribes it after a reconnect. */
  sub: Redis;
}

/** Options of {@link createRedisLinks}. */
export interface RedisLinkOptions {
  url: string;
  /** Connection names start with `switchboard:<name>` (seen in CLIENT LIST). */
  name: string;
  /** Link changes are logged here: lost at warn, back at info, never with the password. */
  log: Logger;
  /** Auto-pipelining for the command connection. @default false */
  autoPipelining?: boolean;
}

/**
 * Creates (not connects) the command and subscriber connections with the options every component
 * relies on, and logs their state changes once per transition: an idle node or gateway otherwise
 * says nothing while Redis refuses it.
 */
export function createRedisLinks(options: RedisLinkOptions): RedisLinks {
  const common: RedisOptions = {
    lazyConnect: true,
    connectionName: `switchboard:${options.name}`,
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
  };
  const redis = new Redis(options.url, {
    ...common,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: options.autoPipelining ?? false,
  });
  const sub = new Redis(options.url, { ...common, connectionName: `switchboard:${options.name}:sub` });
  const where = redactRedisUrl(options.url);
  watchLink(redis, 'command', where, options.log);
  watchLink(sub, 'subscriber', where, options.log);
  return { redis, sub };
}

/** Logs `error` once per outage (warn) and the first `ready` after it (info). */
function watchLink(client: Redis, role: string, where: string, log: Logger): void {
  let up = false;
  let warned = false;
  client.on('ready', () => {
    if (warned) log.info({ redis: where, connection: role }, 'Redis connection back');
    up = true;
    warned = false;
  });
  const lost = (detail: string) => {
    if (warned) return;
    warned = true;
    log.warn({ redis: where, connection: role, detail }, up ? 'Redis connection lost' : 'Redis not reachable');
    up = false;
  };
  // ioredis reports errors again on every retry: one line per outage is enough.
  client.on('error', (err: Error) => lost(redactRedisUrl(err.message)));
  client.on('close', () => {
    if (up && client.status !== 'end') lost('connection closed');
  });
}

/**
 * Connects both links, or disconnects them and throws.
 * @throws RedisUnreachableError naming `REDIS_URL` and `hint`, after {@link REDIS_CONNECT_TIMEOUT_MS} at most.
 */
export async function connectRedis(links: RedisLinks, url: string, hint: string): Promise<void> {
  const where = redactRedisUrl(url);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new RedisUnreachableError(`Redis is not reachable at ${where} (REDIS_URL): ${hint}`)),
      REDIS_CONNECT_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([Promise.all([links.redis.connect(), links.sub.connect()]), timeout]);
  } catch (err) {
    links.redis.disconnect();
    links.sub.disconnect();
    if (err instanceof RedisUnreachableError) throw err;
    const why = redactRedisUrl((err as Error).message).replace(/\.$/, '');
    throw new RedisUnreachableError(`Redis is not reachable at ${where} (REDIS_URL): ${why}. ${hint}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Quits both links (and cuts them if quitting fails). */
export async function closeRedis(links: RedisLinks): Promise<void> {
  await Promise.allSettled([links.redis.quit(), links.sub.quit()]);
  links.redis.disconnect();
  links.sub.disconnect();
}
