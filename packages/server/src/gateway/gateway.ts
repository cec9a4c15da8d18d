import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { DestinationStream, Logger } from 'pino';
import { readPem } from '../auth/pem.js';
import { TokenVerifier } from '../auth/token-verifier.js';
import { ApiKeyCheck } from '../http/api-key.js';
import { HttpLimits, type HttpLimitsOptions } from '../http/http-limits.js';
import { sendError, sendJson, sendThrown } from '../http/respond.js';
import { answerProbe, closeServer, createServer, listen, requestUrl, type MetricsSource } from '../http/server-kit.js';
import { serveAdmin } from '../http/admin-pages.js';
import { openApiDocument } from '../http/openapi.js';
import { routeUser } from '../http/route-auth.js';
import { createLogger } from '../logger.js';
import type { NodeOptions } from '../options.js';
import { closeRedis, connectRedis, createRedisLinks, type RedisLinks } from '../redis/connect.js';
import { RedisRegistry } from '../registry/redis-registry.js';
import type { Registry } from '../registry/registry.js';
import { NodeHealth } from './health.js';
import { HttpProxy } from './http-proxy.js';
import { GatewayMetrics } from './metrics.js';
import { HashPolicy, createPolicy, type PolicyName } from './policy.js';
import { UpgradeProxy } from './upgrade-proxy.js';

/**
 * How a gateway runs. Built from the node options' table by {@link gatewayOptions}. The HTTP limits
 * apply to `/v1` per address of the gateway's clients.
 */
export interface GatewayOptions extends HttpLimitsOptions {
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
  /** `redisUrl` names one node of a Redis Cluster. */
  redisCluster?: boolean | undefined;
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
  /** Connections accepted per event-loop turn at most (http/server-kit.ts `listen`). */
  acceptPerTurn: number;
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
    redisCluster: options.redisCluster === 'on',
    redisPrefix: options.redisPrefix,
    nodeLeaseMs: options.presenceTtlMs,
    tlsCert: options.tlsCert,
    tlsKey: options.tlsKey,
    probeIntervalMs: options.gatewayProbeIntervalMs,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    maxPayloadBytes: options.maxPayloadBytes,
    acceptPerTurn: options.acceptPerTurn,
    httpRateLimitPerSecond: options.httpRateLimitPerSecond,
    httpRateLimitBurst: options.httpRateLimitBurst,
    httpAuthFailuresPerSecond: options.httpAuthFailuresPerSecond,
    httpAuthFailuresBurst: options.httpAuthFailuresBurst,
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

/**
 * `switchboard gateway`: one address in front of the nodes. It follows the live nodes through the
 * registry's change events (never reading Redis per connection), probes each node's `/readyz`,
 * checks a WebSocket upgrade's token once and proxies the upgrade to a node picked by policy
 * (`hash`, `round-robin`, `least-conn`), as raw bytes. HTTP calls go to any live node, except
 * `/healthz`, `/readyz`, `/metrics`, `GET /v1/route`, `GET /v1/openapi.json` and `/admin`, which the gateway answers itself.
 * `/v1` calls are held to the HTTP limits per client address, and a wrong API key is refused here.
 */
export class Gateway {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly health: NodeHealth;
  private readonly server: Server;
  private readonly upgrades: UpgradeProxy;
  private readonly http: HttpProxy;
  private readonly apiKey: ApiKeyCheck;
  private readonly limits: HttpLimits;
  private readonly verifier: TokenVerifier;
  private readonly routePolicy = new HashPolicy();
  private readonly registry: Registry;
  private readonly redis: RedisLinks | undefined;
  private readonly secure: boolean;
  private metricsSource: MetricsSource;
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
    this.metricsSource = this.metrics.registry;
    const verifier = (this.verifier = new TokenVerifier(options));
    if (runtime.registry) {
      this.registry = runtime.registry;
    } else {
      // While Redis is away the gateway keeps routing by the last list and the probes.
      this.redis = createRedisLinks({ url: options.redisUrl, name: options.id, log: this.log, cluster: options.redisCluster ?? false });
      this.registry = new RedisRegistry({ ...this.redis, prefix: options.redisPrefix, nodeLeaseMs: options.nodeLeaseMs });
    }
    this.health = new NodeHealth({ registry: this.registry, probeIntervalMs: options.probeIntervalMs, log: this.log });
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined))
      throw new Error('tlsCert and tlsKey go together: give both or neither');
    this.secure = options.tlsCert !== undefined;
    this.apiKey = new ApiKeyCheck(options.apiKey);
    const rejected = this.metrics.httpRejected;
    this.limits = new HttpLimits(options, { log: this.log, rejected: (reason) => rejected.inc({ reason }) });
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
    this.http = new HttpProxy({
      health: this.health,
      log: this.log,
      metrics: this.metrics,
      maxBodyBytes: options.maxPayloadBytes,
      timeoutMs: 30_000,
      secure: this.secure,
    });
    const tls = this.secure ? { cert: readPem(options.tlsCert!, 'tlsCert'), key: readPem(options.tlsKey!, 'tlsKey') } : undefined;
    this.server = createServer(
      { handshakeTimeoutMs: options.handshakeTimeoutMs, ...(tls ? { tls } : {}) },
      (req, res) => this.onRequest(req, res),
      this.log,
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrades.handle(req, socket, head));
  }

  /** Connects to Redis, learns the live nodes, listens. Resolves with the bound port and base URL. */
  async start(): Promise<{ port: number; url: string }> {
    if (this.redis)
      await connectRedis(this.redis, this.options.redisUrl, 'the gateway finds the nodes there; start it or point REDIS_URL at it.');
    this.unwatch = this.health.onChange((live) => {
      this.metrics.nodeUp.reset();
      for (const n of this.health.all()) this.metrics.nodeUp.set({ target: n.id }, n.healthy ? 1 : 0);
      this.log.info({ live: live.map((n) => n.id) }, 'live nodes changed');
    });
    await this.health.start();
    const { port, url } = await listen(this.server, this.options.port, this.options.host, this.secure, {
      acceptPerTurn: this.options.acceptPerTurn,
      log: this.log,
    });
    this.baseUrl = url;
    this.log.info({ url, policy: this.options.policy, live: this.health.live().map((n) => n.id) }, 'gateway listening');
    return { port, url };
  }

  /** What `/metrics` answers instead of this gateway's registry (a worker's: the sum over all workers). */
  useMetrics(source: MetricsSource): void {
    this.metricsSource = source;
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
      this.limits.close();
      await closeServer(this.server);
      if (this.redis) {
        await this.registry.close().catch(() => undefined);
        await closeRedis(this.redis);
      }
      this.log.info('gateway stopped');
    })();
    return this.stopped;
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req, res);
    if (!url) return;
    const path = url.pathname;
    const probes = {
      health: () => ({ status: 'ok', gateway: this.options.id }),
      readiness: () => ({
        ready: this.ready,
        body: {
          status: this.ready ? 'ready' : this.stopping ? 'draining' : 'unavailable',
          gateway: this.options.id,
          nodes: this.health.live().map((n) => n.id),
        },
      }),
      metrics: this.metricsSource,
    };
    if (await answerProbe(path, res, probes)) return;
    if (path.startsWith('/v1/')) return this.limits.serve(req, res, () => this.v1(req, res, url));
    if ((path === '/admin' || path.startsWith('/admin/')) && (await serveAdmin(req, res, url))) return;
    await this.http.forward(req, res);
  }

  /**
   * A `/v1` call, within the per-address limits. With the API key, the gateway refuses a wrong one
   * itself: a guesser then never reaches the nodes, which would count the failures against the
   * gateway's own address and block every caller behind it.
   */
  private async v1(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    if (path === '/v1/route' && req.method === 'GET') return this.route(req, res, url);
    if (path === '/v1/openapi.json' && req.method === 'GET') return sendJson(res, 200, openApiDocument());
    if (this.apiKey.configured && !this.apiKey.allows(req))
      return sendError(res, 'ERR_UNAUTHORIZED', 'missing or wrong API key (Authorization: Bearer <key>)');
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
