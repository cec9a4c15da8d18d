import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
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

/** A client of one Redis server, or of a Redis Cluster (`SWITCHBOARD_REDIS_CLUSTER=on`). */
export type RedisClient = Redis | Cluster;

/** The two connections a Redis component set needs. */
export interface RedisLinks {
  /** Commands; fails fast (no offline queue) so that callers answer `unavailable` at once. */
  redis: RedisClient;
  /**
   * Pub/sub (subscriber mode); ioredis re-subscribes it after a reconnect. On a cluster it also
   * holds one sharded subscriber per master (`SSUBSCRIBE`), re-sent after a failover.
   */
  sub: RedisClient;
  /** A Redis Cluster: scripts and pipelines keep to one hash slot, pub/sub is sharded. */
  cluster?: boolean | undefined;
}

/** Options of {@link createRedisLinks}. */
export interface RedisLinkOptions {
  url: string;
  /** Connection names start with `switchboard:<name>` (seen in CLIENT LIST). */
  name: string;
  /** Link changes are logged here: lost at warn, back at info, never with the password. */
  log: Logger;
  /** Auto-pipelining for the command connection (not on a cluster, see below). @default false */
  autoPipelining?: boolean;
  /** `url` names one node of a Redis Cluster. @default false */
  cluster?: boolean;
}

/**
 * Creates (not connects) the command and subscriber connections with the options every component
 * relies on, and logs their state changes once per transition: an idle node or gateway otherwise
 * says nothing while Redis refuses it.
 */
export function createRedisLinks(options: RedisLinkOptions): RedisLinks {
  const retryStrategy = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000);
  const common: RedisOptions = { lazyConnect: true, connectionName: `switchboard:${options.name}`, retryStrategy };
  const failFast = { enableOfflineQueue: false, enableAutoPipelining: options.autoPipelining ?? false };
  const subName = `switchboard:${options.name}:sub`;
  let links: RedisLinks;
  if (options.cluster) {
    const { startup, redisOptions } = clusterStartup(options.url);
    const cluster = (connectionName: string, more: ClusterOptions): Cluster =>
      new Cluster([startup], {
        lazyConnect: true,
        clusterRetryStrategy: retryStrategy,
        redisOptions: { ...redisOptions, connectionName, maxRetriesPerRequest: 0 },
        ...more,
      });
    links = {
      // Not auto-pipelined: ioredis follows a MOVED (after a failover) for a command sent alone,
      // while an auto-pipelined batch with it fails as a whole.
      redis: cluster(common.connectionName!, { enableOfflineQueue: false }),
      sub: cluster(subName, { shardedSubscribers: true }),
      cluster: true,
    };
  } else {
    links = {
      redis: new Redis(options.url, { ...common, ...failFast, maxRetriesPerRequest: 0 }),
      sub: new Redis(options.url, { ...common, connectionName: subName }),
      cluster: false,
    };
  }
  const where = redactRedisUrl(options.url);
  watchLink(links.redis, 'command', where, options.log);
  watchLink(links.sub, 'subscriber', where, options.log);
  return links;
}

/** The startup node and per-node connection options of a cluster from a `redis[s]://` URL. */
function clusterStartup(url: string): { startup: { host: string; port: number }; redisOptions: RedisOptions } {
  const parsed = new URL(url);
  const redisOptions: RedisOptions = {};
  if (parsed.username) redisOptions.username = decodeURIComponent(parsed.username);
  if (parsed.password) redisOptions.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') redisOptions.tls = {};
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return { startup: { host, port: Number(parsed.port || 6379) }, redisOptions };
}

/** Logs `error` once per outage (warn) and the first `ready` after it (info). */
function watchLink(client: RedisClient, role: string, where: string, log: Logger): void {
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
    await Promise.race([Promise.all([links.redis.connect(), links.sub.connect()]).then(() => warmShards(links.redis)), timeout]);
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

/**
 * On a cluster, opens the command connection to every master before the first command: ioredis
 * connects to a shard at its first command, and commands sent while that connection opens can
 * reach the shard in another order than they were sent (seen with 1,000 SPUBLISH in a row).
 */
async function warmShards(client: RedisClient): Promise<void> {
  if (client instanceof Cluster) await Promise.all(client.nodes('master').map((node) => node.ping()));
}

/** Quits both links (and cuts them if quitting fails). */
export async function closeRedis(links: RedisLinks): Promise<void> {
  await Promise.allSettled([links.redis.quit(), links.sub.quit()]);
  links.redis.disconnect();
  links.sub.disconnect();
}
