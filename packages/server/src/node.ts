import type { Server } from 'node:http';
import type { DestinationStream, Logger } from 'pino';
import { CloseCode } from '@switchboard/protocol';
import { TokenVerifier, type Verifier } from './auth/token-verifier.js';
import type { BrokerHandler } from './broker/broker.js';
import { ChannelService, RECOVERY_PAGE } from './channel-service.js';
import { SessionMover } from './cluster/session-mover.js';
import { createEngine, type Engine } from './engine.js';
import { HttpApi } from './http/api.js';
import { HttpLimits } from './http/http-limits.js';
import { InboxService } from './inbox/inbox-service.js';
import { AppendThenPublish } from './publish/publication-path.js';
import { isUserChannel } from './history/retention.js';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { DevPages } from './http/dev-pages.js';
import { nodeRoutes } from './http/node-routes.js';
import { closeServer, createServer, listen } from './http/server-kit.js';
import { Hub } from './hub.js';
import { createLogger } from './logger.js';
import { NodeMetrics } from './metrics.js';
import type { NodeContext, SessionOptions, SessionRef } from './node-context.js';
import type { NodeOptions } from './options.js';
import { PresenceTracker } from './presence/presence-tracker.js';
import { NodeRing } from './registry/node-ring.js';
import type { NodeInfo } from './registry/registry.js';
import { Admission } from './session/admission.js';
import { Session } from './session/session.js';
import { SessionTable } from './session/session-table.js';

/** How a node is run. */
export interface NodeRuntime {
  /** `dev`: demo page and the dev token endpoint (needs `devSecret`); `start`: demo page; `node`: neither. @default 'node' */
  mode?: 'dev' | 'start' | 'node';
  /** Engine components; built from the options when absent. */
  engine?: Engine;
  /** Logger; built from the options (JSON to stdout) when absent. */
  logger?: Logger;
  /** Where the built logger writes (tests capture logs with it). */
  logDestination?: DestinationStream;
  /** Client token verification; a {@link TokenVerifier} on the options when absent. */
  verifier?: Verifier;
}

/** How often the node reports its load to the registry (the admin dashboard's rates move with it). */
const LOAD_REPORT_MS = 1000;

/**
 * One Switchboard node: the composition root that wires the HTTP server, admission, sessions,
 * channels, presence and the engine behind them. `start()` listens; `drain()` closes sessions with
 * 1001 and stops; `stop()` stops at once.
 */
export class SwitchboardNode implements NodeContext {
  readonly nodeId: string;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly hub: Hub;
  readonly engine: Engine;
  readonly channels: ChannelService;
  readonly inbox: InboxService | undefined;
  private readonly webhooks: WebhookDispatcher | undefined;
  readonly presence: PresenceTracker;
  readonly sessionOptions: SessionOptions;
  private readonly sessions: SessionTable;
  private readonly admission: Admission;
  private readonly mover: SessionMover;
  private readonly server: Server;
  private readonly httpLimits: HttpLimits;
  /** The live nodes' ring with their URLs, for `GET /v1/route` (the same ring as `engine.ring`). */
  private readonly routes = new NodeRing();
  private readonly startedAt = Date.now();
  private readonly unwatch: (() => void)[] = [];
  private loadReport: NodeJS.Timeout | undefined;
  private draining = false;
  private stopped: Promise<void> | undefined;
  private drained: Promise<void> | undefined;
  private baseUrl = '';

  constructor(
    readonly options: NodeOptions,
    runtime: NodeRuntime = {},
  ) {
    this.nodeId = options.nodeId;
    this.sessionOptions = options;
    const log = (this.log = runtime.logger ?? createLogger(this.nodeId, options.logLevel, runtime.logDestination));
    const metrics = (this.metrics = new NodeMetrics(this.nodeId));
    const confirms = metrics.brokerConfirm.labels(options.broker);
    metrics.brokerConfirm.zero({ broker: options.broker });
    const engine = (this.engine = runtime.engine ?? createEngine(options, { log, brokerPublished: (s) => confirms.observe(s) }));
    const verifier = runtime.verifier ?? new TokenVerifier(options);
    this.hub = new Hub(engine.broker, metrics, log, options.channelLingerMs);
    this.sessions = new SessionTable(metrics, log);
    const webhooks = (this.webhooks =
      options.webhookUrl && options.webhookSecret
        ? new WebhookDispatcher({
            url: options.webhookUrl,
            secret: options.webhookSecret,
            outbox: engine.outbox,
            acks: engine.acks,
            unackedAfterMs: options.unackedAfterMs,
            timeoutMs: options.webhookTimeoutMs,
            maxQueue: options.webhookQueueSize,
            nodeId: this.nodeId,
            metrics,
            log,
          })
        : undefined);
    this.channels = new ChannelService({
      publication: engine.publication,
      history: engine.history,
      maxRecoveryMessages: options.maxRecoveryMessages,
      metrics,
      log,
      // Inbox and webhooks on: each message put in an inbox is announced if it stays unacked.
      published:
        webhooks && engine.acks
          ? (pub) => (isUserChannel(pub.channel) && !pub.topic.startsWith('$') ? webhooks.inboxMessage(pub) : Promise.resolve())
          : undefined,
    });
    this.inbox = engine.acks
      ? new InboxService({
          history: engine.history,
          acks: engine.acks,
          receipts: new AppendThenPublish(engine.history, engine.broker),
          pageSize: RECOVERY_PAGE,
          metrics,
          log,
        })
      : undefined;
    this.presence = new PresenceTracker({
      store: engine.presence,
      broker: engine.broker,
      nodeId: this.nodeId,
      presenceTtlMs: options.presenceTtlMs,
      log,
      metrics,
      sessions: () => this.sessions,
      isOpen: (session) => this.sessions.has(session),
      userPresence: webhooks && ((user, event) => webhooks.userPresence(user, event)),
    });
    this.mover = new SessionMover({ nodeId: this.nodeId, moveWindowMs: options.moveWindowMs, log, sessions: () => this.sessions });
    this.admission = new Admission({
      options,
      verifier,
      table: this.sessions,
      metrics,
      log,
      draining: () => this.draining,
      createSession: (ws, identity, batching, early) => new Session(ws, identity, this, batching, early),
    });
    const mode = runtime.mode ?? 'node';
    const pages =
      mode === 'node' ? undefined : new DevPages({ devSecret: mode === 'dev' ? options.jwtSecret : undefined, wsPath: options.wsPath });
    const api = new HttpApi({
      nodeId: this.nodeId,
      log,
      apiKey: options.apiKey,
      maxBodyBytes: options.maxPayloadBytes,
      channels: this.channels,
      presence: engine.presence,
      history: engine.history,
      inbox: this.inbox,
      broker: engine.broker,
      registry: engine.registry,
      url: () => this.baseUrl,
      connections: () => this.sessions.size,
      route: (user) => this.routes.route(user),
      shares: () => this.routes.ring.shares(),
      verifier,
    });
    const probes = {
      health: () => ({ status: 'ok', node: this.nodeId }),
      // `connections` feeds the gateway's least-conn policy, which probes /readyz anyway.
      readiness: () => {
        const status = this.ready ? 'ready' : this.draining ? 'draining' : 'unavailable';
        return { ready: this.ready, body: { status, node: this.nodeId, connections: this.sessions.size } };
      },
      metrics: metrics.registry,
    };
    const limits = (this.httpLimits = new HttpLimits(options, { log, rejected: (reason) => metrics.httpRejected.inc({ reason }) }));
    const routes = nodeRoutes({ probes, api, limits, pages, wsPath: options.wsPath, log });
    this.server = createServer({ handshakeTimeoutMs: options.handshakeTimeoutMs }, routes, log);
    this.server.on('upgrade', this.admission.handleUpgrade);
  }

  /** Listens and registers the node; resolves with the bound port and base URL. */
  async start(): Promise<{ port: number; url: string }> {
    const { engine, options, log } = this;
    await engine.connect();
    await engine.broker.start(this.brokerHandler());
    const { port, url } = await listen(this.server, options.port, options.host, false, { acceptPerTurn: options.acceptPerTurn, log });
    this.baseUrl = options.publicUrl ?? url;
    await engine.registry.register(this.nodeInfo());
    this.sessions.startHeartbeat(options.heartbeatIntervalMs);
    this.presence.start();
    this.webhooks?.start();
    this.loadReport = setInterval(
      () => void engine.registry.update(this.nodeInfo()).catch((err: unknown) => this.engineFailed('registry', err)),
      LOAD_REPORT_MS,
    );
    this.loadReport.unref();
    this.unwatch.push(
      engine.ring.onChange((before, after) => {
        log.info({ nodes: after.nodes }, 'hash ring changed');
        if (options.routing === 'hash') this.mover.move(before, after);
      }),
      engine.registry.onChange((nodes) => {
        log.info({ nodes: nodes.map((n) => n.node) }, 'cluster membership changed');
        this.routes.update(nodes);
        engine.ring.set(this.routes.ring);
      }),
    );
    log.info(
      {
        url: this.baseUrl,
        wsPath: options.wsPath,
        engine: options.engine,
        broker: options.broker,
        history: options.history,
        inbox: options.inbox,
      },
      'node listening',
    );
    return { port, url: this.baseUrl };
  }

  /** The node's base URL (after `start`). */
  get url(): string {
    return this.baseUrl;
  }

  /** The presence store, for queries (NodeContext). */
  get presenceStore() {
    return this.engine.presence;
  }

  /** Open sessions on this node. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** True when engines are reachable and the node is not draining. */
  get ready(): boolean {
    const e = this.engine;
    return !this.draining && e.broker.ready && e.history.ready && e.presence.ready && e.registry.ready;
  }

  /** NodeContext: a session is gone. */
  async sessionGone(session: SessionRef, channels: string[]): Promise<void> {
    if (!this.sessions.remove(session)) return;
    await this.presence.gone(session, channels);
  }

  /** What the broker pushes into the node: messages to the hub; link changes and failures to logs and metrics. */
  private brokerHandler(): BrokerHandler {
    const broker = this.options.broker;
    this.metrics.brokerUp.set(1);
    return {
      message: this.hub.onBrokerMessage,
      link: (state, detail) => {
        this.metrics.brokerUp.set(state === 'up' ? 1 : 0);
        if (state === 'down') return void this.log.warn({ broker, detail }, 'broker link lost');
        this.metrics.brokerReconnects.inc();
        this.log.info({ broker, detail }, 'broker link back: subscriptions restored');
        // What the broker lost while it was away: from history, without waiting for each channel's next message.
        void this.hub.catchUp((channel) => this.engine.history.position(channel));
      },
      error: (err, what) => this.engineFailed('broker', err, what),
    };
  }

  private engineFailed(component: string, err: unknown, what = `${component} call failed`): void {
    this.metrics.engineErrors.inc({ component });
    this.log.error({ err, component }, what);
  }

  private nodeInfo(): NodeInfo {
    const { sessions, metrics } = this;
    return {
      node: this.nodeId,
      url: this.baseUrl,
      connections: sessions.size,
      startedAt: this.startedAt,
      stats: { users: sessions.users, channels: this.hub.size, published: metrics.published, delivered: metrics.delivered, ts: Date.now() },
    };
  }

  /**
   * Graceful shutdown: `/readyz` turns 503 and new upgrades get 503 at once, every session is
   * closed with 1001, then the node stops. Sessions still open after `drainTimeoutMs` are cut.
   */
  drain(): Promise<void> {
    this.drained ??= (async () => {
      this.draining = true;
      const { drainTimeoutMs, drainSpreadMs } = this.options;
      // Leave a second of the budget for the last closes to be answered and for stopping.
      const spreadMs = Math.min(drainSpreadMs, Math.max(0, drainTimeoutMs - 1000));
      this.log.info({ sessions: this.sessions.size, spreadMs }, 'draining');
      const deadline = Date.now() + Math.max(0, drainTimeoutMs - 500);
      await closeSpread([...this.sessions], spreadMs, (session) => session.close(CloseCode.GOING_AWAY, 'node draining'));
      // Leave half a second of the budget for stopping, so the process exits within drainTimeoutMs.
      while (this.admission.openSockets > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await this.stop();
    })();
    return this.drained;
  }

  /** Stops at once: sockets are cut, the server and the engine are closed. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.draining = true;
      this.sessions.stopHeartbeat();
      this.presence.stop();
      this.mover.stop();
      this.hub.stop();
      await this.webhooks?.stop();
      clearInterval(this.loadReport);
      this.httpLimits.close();
      for (const unwatch of this.unwatch) unwatch();
      this.admission.terminateAll();
      for (const session of [...this.sessions]) await session.dispose();
      this.admission.close();
      await closeServer(this.server);
      await this.engine.close();
      this.log.info('stopped');
    })();
    return this.stopped;
  }
}

/** Tick of {@link closeSpread}. */
const SPREAD_TICK_MS = 20;

/**
 * Calls `close` on every item, evenly over `spreadMs` (all at once for 0): by each tick, the share
 * of the items that the elapsed share of the window calls for. Resolves after the last.
 */
async function closeSpread<T>(items: readonly T[], spreadMs: number, close: (item: T) => void): Promise<void> {
  const started = Date.now();
  let done = 0;
  for (;;) {
    const elapsed = Date.now() - started;
    const due = spreadMs <= 0 ? items.length : Math.min(items.length, Math.ceil((items.length * elapsed) / spreadMs));
    while (done < due) close(items[done++]!);
    if (done >= items.length) return;
    await new Promise((r) => setTimeout(r, SPREAD_TICK_MS));
  }
}
