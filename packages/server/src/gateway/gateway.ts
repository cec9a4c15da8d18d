import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Redis, type RedisOptions } from 'ioredis';
import type { DestinationStream, Logger } from 'pino';
import { TokenVerifier } from '../auth/token-verifier.js';
import { redactRedisUrl } from '../engine.js';
import { ApiKeyCheck } from '../http/api-key.js';
import { sendError, sendJson, sendThrown } from '../http/respond.js';
import { routeUser } from '../http/route-auth.js';
import { createLogger, redactUrl } from '../logger.js';
import type { NodeOptions } from '../options.js';
import { RedisRegistry } from '../registry/redis-registry.js';
import type { Registry } from '../registry/registry.js';
import { NodeHealth } from './health.js';
import { HttpProxy } from './http-proxy.js';
import { GatewayMetrics } from './metrics.js';
import { HashPolicy, createPolicy, type PolicyName } from './policy.js';
import { UpgradeProxy } from './upgrade-proxy.js';

/** How a gateway runs. Built from the node options' table by {@link gatewayOptions}. */
export interface GatewayOptions {
  /** Id in logs and metrics. */
  id: string;
  port: number;
  host: string;
  /** WebSocket path, the same as the nodes'. */
  wsPath: string;
  policy: PolicyName;
  jwtSecret?: string | undefined;
  jwtPublicKey?: string | undefined;
  jwtAlgorithm?: 'HS256' | 'RS256' | 'ES256' | undefined;
  requireExp: boolean;
  /** The nodes' API key, for `GET /v1/route` answered by the gateway itself. */
  apiKey?: string | undefined;
  allowedOrigins: readonly string[];
  redisUrl: string;
  redisPrefix: string;
  /** The nodes' lease (their `presenceTtlMs`). */
  nodeLeaseMs: number;
  /** PEM certificate (text or file path): serve `wss://` and `https://`. Needs `tlsKey`. */
  tlsCert?: string | undefined;
  /** PEM private key (text or file path) for `tlsCert`. */
  tlsKey?: string | undefined;
  /** How often each node's `/readyz` is probed. */
  probeIntervalMs: number;
  /** Time a client has to send its request; also the bound on reaching a node. */
  handshakeTimeoutMs: number;
  /** Largest HTTP body forwarded. */
  maxPayloadBytes: number;
  logLevel: string;
}

/** The gateway's options from resolved node options (the same table, flags and environment). */
export function gatewayOptions(options: NodeOptions): GatewayOptions {
  return {
    id: options.nodeId,
    port: options.port,
    host: options.host,
    wsPath: options.wsPath,
    policy: options.gatewayPolicy,
    jwtSecret: options.jwtSecret,
    jwtPublicKey: options.jwtPublicKey,
    jwtAlgorithm: options.jwtAlgorithm,
    requireExp: options.requireExp,
    apiKey: options.apiKey,
    allowedOrigins: options.allowedOrigins,
    redisUrl: options.redisUrl,
    redisPrefix: options.redisPrefix,
    nodeLeaseMs: options.presenceTtlMs,
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    probeIntervalMs: options.gatewayProbeIntervalMs,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    maxPayloadBytes: options.maxPayloadBytes,
    logLevel: options.logLevel,
  };
}

/** What a gateway may be given instead of building it. */
export interface GatewayRuntime {
  /** The cluster's registry; a RedisRegistry on `redisUrl`/`redisPrefix` when absent. */
  registry?: Registry;
  logger?: Logger;
  /** Where the built logger writes (tests capture logs with it). */
  logDestination?: DestinationStream;
}

/** How long `start()` waits for Redis. */
const CONNECT_TIMEOUT_MS = 5000;

/**
 * `switchboard gateway`: one address in front of the nodes. It follows the live nodes through the
 * registry's change events (never reading Redis per connection), probes each node's `/readyz`,
 * checks a WebSocket upgrade's token once and proxies the upgrade to a node picked by policy
 * (`hash`, `round-robin`, `least-conn`), as raw bytes. HTTP calls go to any live node, except
 * `/healthz`, `/readyz`, `/metrics` and `GET /v1/route`, which the gateway answers itself.
 */
export class Gateway {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly health: NodeHealth;
  private readonly server: Server;
  private readonly upgrades: UpgradeProxy;
  private readonly http: HttpProxy;
  private readonly apiKey: ApiKeyCheck;
  private readonly verifier: TokenVerifier;
  private readonly routePolicy = new HashPolicy();
  private readonly registry: Registry;
  private readonly redis: { redis: Redis; sub: Redis } | undefined;
  private readonly secure: boolean;
  private unwatch: (() => void) | undefined;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private baseUrl = '';

  /** @throws Error for a missing JWT secret/key or an unreadable certificate. */
  constructor(
    readonly options: GatewayOptions,
    runtime: GatewayRuntime = {},
  ) {
    this.log = runtime.logger ?? createLogger(options.id, options.logLevel, runtime.logDestination);
    this.metrics = new GatewayMetrics(options.id);
    const verifier = (this.verifier = new TokenVerifier(options));
    if (runtime.registry) {
      this.registry = runtime.registry;
    } else {
      const common: RedisOptions = { lazyConnect: true, connectionName: `switchboard:${options.id}`, retryStrategy: (n) => Math.min(100 * 2 ** Math.min(n, 5), 2000) };
      const redis = new Redis(options.redisUrl, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const sub = new Redis(options.redisUrl, { ...common, connectionName: `switchboard:${options.id}:sub` });
      // While Redis is away the gateway keeps routing by the last list and the probes.
      redis.on('error', () => undefined);
      sub.on('error', () => undefined);
      this.redis = { redis, sub };
      this.registry = new RedisRegistry({ redis, sub, prefix: options.redisPrefix, nodeLeaseMs: options.nodeLeaseMs });
    }
    this.health = new NodeHealth({ registry: this.registry, probeIntervalMs: options.probeIntervalMs, log: this.log });
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new Error('tlsCert and tlsKey go together: give both or neither');
    this.secure = options.tlsCert !== undefined;
    this.apiKey = new ApiKeyCheck(options.apiKey);
    this.upgrades = new UpgradeProxy({
      wsPath: options.wsPath,
      allowedOrigins: options.allowedOrigins,
      verifier,
      health: this.health,
      policy: createPolicy(options.policy),
      log: this.log,
      metrics: this.metrics,
      secure: this.secure,
      connectTimeoutMs: Math.min(options.handshakeTimeoutMs, 5000),
      draining: () => this.stopping,
    });
    this.http = new HttpProxy({ health: this.health, log: this.log, metrics: this.metrics, maxBodyBytes: options.maxPayloadBytes, timeoutMs: 30_000, secure: this.secure });
    const serverOptions = { headersTimeout: options.handshakeTimeoutMs, requestTimeout: options.handshakeTimeoutMs };
    const onRequest = (req: IncomingMessage, res: ServerResponse) =>
      void this.onRequest(req, res).catch((err: unknown) => {
        this.log.error({ err, url: redactUrl(req.url) }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
        else res.destroy();
      });
    this.server = this.secure
      ? createHttpsServer({ ...serverOptions, cert: readPem(options.tlsCert!, 'tlsCert'), key: readPem(options.tlsKey!, 'tlsKey') }, onRequest)
      : createHttpServer(serverOptions, onRequest);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrades.handle(req, socket, head));
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      socket.destroy();
    });
  }

  /** Connects to Redis, learns the live nodes, listens. Resolves with the bound port and base URL. */
  async start(): Promise<{ port: number; url: string }> {
    if (this.redis) await this.connectRedis();
    this.unwatch = this.health.onChange((live) => {
      this.metrics.nodeUp.reset();
      for (const n of this.health.all()) this.metrics.nodeUp.set({ target: n.id }, n.healthy ? 1 : 0);
      this.log.info({ live: live.map((n) => n.id) }, 'live nodes changed');
    });
    await this.health.start();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.server.address() as AddressInfo;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host === '0.0.0.0' ? '127.0.0.1' : this.options.host;
    this.baseUrl = `${this.secure ? 'https' : 'http'}://${host}:${port}`;
    this.log.info({ url: this.baseUrl, policy: this.options.policy, live: this.health.live().map((n) => n.id) }, 'gateway listening');
    return { port, url: this.baseUrl };
  }

  /** The gateway's base URL (after `start`). */
  get url(): string {
    return this.baseUrl;
  }

  /** Proxied WebSocket connections open now. */
  get connections(): number {
    return this.upgrades.connections;
  }

  /** True when at least one node is live and the gateway is not stopping. */
  get ready(): boolean {
    return !this.stopping && this.health.live().length > 0;
  }

  /**
   * Stops at once: no new connections, every proxied connection is cut (clients see 1006 and
   * reconnect, through another gateway or this one restarted), Redis connections are closed.
   * The bytes are not parsed, so the gateway cannot send a close frame of its own. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping = true;
      this.unwatch?.();
      this.health.stop();
      this.upgrades.closeAll();
      this.http.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      if (this.redis) {
        await this.registry.close().catch(() => undefined);
        await Promise.allSettled([this.redis.redis.quit(), this.redis.sub.quit()]);
        this.redis.redis.disconnect();
        this.redis.sub.disconnect();
      }
      this.log.info('gateway stopped');
    })();
    return this.stopped;
  }

  private async connectRedis(): Promise<void> {
    const { redis, sub } = this.redis!;
    const where = redactRedisUrl(this.options.redisUrl);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis is not reachable at ${where} (REDIS_URL): the gateway finds the nodes there; start it or point REDIS_URL at it`)), CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.all([redis.connect(), sub.connect()]), timeout]);
    } catch (err) {
      redis.disconnect();
      sub.disconnect();
      throw err instanceof Error && err.message.startsWith('Redis is not reachable')
        ? err
        : new Error(`Redis is not reachable at ${where} (REDIS_URL): ${(err as Error).message.replace(/\.$/, '')}. The gateway finds the nodes there; start it or point REDIS_URL at it.`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendJson(res, 400, { error: { code: 'bad_frame', message: 'bad request URL' } });
    }
    const path = url.pathname;
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok', gateway: this.options.id });
    if (path === '/readyz') {
      const live = this.health.live().map((n) => n.id);
      const status = this.ready ? 'ready' : this.stopping ? 'draining' : 'unavailable';
      return sendJson(res, this.ready ? 200 : 503, { status, gateway: this.options.id, nodes: live });
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      return void res.end(await this.metrics.registry.metrics());
    }
    if (path === '/v1/route' && req.method === 'GET') return this.route(req, res, url);
    await this.http.forward(req, res);
  }

  /**
   * `GET /v1/route?user=`: the user's owner on the cluster's ring (what every node answers too);
   * if the owner fails its `/readyz`, the node the `hash` policy would use instead.
   */
  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let user: string;
    try {
      user = await routeUser(req, url, this.apiKey, this.verifier);
    } catch (err) {
      return sendThrown(res, err);
    }
    const live = this.health.live();
    if (live.length === 0) return sendError(res, 'ERR_UNAVAILABLE', 'no node is ready: try again later');
    const node = this.routePolicy.pick(user, live, this.health.ring);
    sendJson(res, 200, { user, node: node.id, url: node.info.url });
  }
}

function readPem(value: string, option: string): string {
  if (value.includes('-----BEGIN')) return value;
  if (existsSync(value)) return readFileSync(value, 'utf8');
  throw new Error(`${option} is neither PEM text nor a readable file`);
}
