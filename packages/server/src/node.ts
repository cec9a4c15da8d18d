import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { DestinationStream, Logger } from 'pino';
import { BROADCAST, CloseCode, decodeResume, parseChannel, type StreamPosition, type SubscriptionState } from '@switchboard/protocol';
import { autoChannels, subscribeDenial } from './auth/permissions.js';
import { TokenError, TokenVerifier, type Identity } from './auth/token-verifier.js';
import { createEngine, type Engine } from './engine.js';
import { SwitchboardError } from './errors.js';
import { HttpApi } from './http/api.js';
import { DevPages } from './http/dev-pages.js';
import { rejectUpgrade, sendJson } from './http/respond.js';
import { Hub } from './hub.js';
import { createLogger, redactUrl } from './logger.js';
import { NodeMetrics } from './metrics.js';
import type { NodeContext, PublishOutcome, PublishSource } from './node-context.js';
import type { NodeOptions } from './options.js';
import { MAX_DATA_DEPTH, messageFrame, nestedDeeperThan, type Publication, type PublicationInput } from './publication.js';
import { Session } from './session/session.js';
import { HashRing } from './registry/hash-ring.js';
import { NodeRing } from './registry/node-ring.js';
import type { PresenceEntry, PresenceMember } from './presence/presence-store.js';

/** Sessions pinged per event-loop turn by the heartbeat sweep. */
const HEARTBEAT_SLICE = 500;

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
}

/**
 * One Switchboard node: the HTTP server, WebSocket sessions, and the engine behind them.
 * `start()` listens; `drain()` closes sessions with 1001 and stops; `stop()` stops at once.
 */
export class SwitchboardNode implements NodeContext {
  readonly nodeId: string;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly hub: Hub;
  readonly engine: Engine;
  private readonly verifier: TokenVerifier;
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly api: HttpApi;
  private readonly pages: DevPages | undefined;
  private readonly sessions = new Set<Session>();
  private readonly sockets = new Set<WebSocket>();
  private readonly userSessions = new Map<string, Set<Session>>();
  private readonly presenceChains = new WeakMap<Session, Promise<void>>();
  private heartbeat: NodeJS.Timeout | undefined;
  private presenceTimer: NodeJS.Timeout | undefined;
  private reapTimer: NodeJS.Timeout | undefined;
  private unwatchRegistry: (() => void) | undefined;
  private unwatchRing: (() => void) | undefined;
  private readonly moveTimers = new Set<NodeJS.Timeout>();
  private loadReport: NodeJS.Timeout | undefined;
  private pendingUpgrades = 0;
  private draining = false;
  private stopped: Promise<void> | undefined;
  private drained: Promise<void> | undefined;
  private baseUrl = '';

  constructor(
    readonly options: NodeOptions,
    runtime: NodeRuntime = {},
  ) {
    this.nodeId = options.nodeId;
    this.log = runtime.logger ?? createLogger(this.nodeId, options.logLevel, runtime.logDestination);
    this.metrics = new NodeMetrics(this.nodeId);
    this.engine = runtime.engine ?? createEngine(options);
    this.hub = new Hub(this.engine.broker, this.metrics, this.log);
    this.verifier = new TokenVerifier(options);
    const mode = runtime.mode ?? 'node';
    this.pages = mode === 'node' ? undefined : new DevPages({ devSecret: mode === 'dev' ? options.jwtSecret : undefined, wsPath: options.wsPath });
    this.api = new HttpApi({ ctx: this, history: this.engine.history, broker: this.engine.broker, registry: this.engine.registry, url: () => this.baseUrl, connections: () => this.sessions.size, route: (user) => this.routes.route(user), verifier: this.verifier });
    this.server = createServer(
      { headersTimeout: options.handshakeTimeoutMs, requestTimeout: options.handshakeTimeoutMs, connectionsCheckingInterval: Math.min(1000, options.handshakeTimeoutMs) },
      (req, res) =>
        void this.onRequest(req, res).catch((err: unknown) => {
          this.log.error({ err, url: redactUrl(req.url) }, 'request failed');
          if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
          else res.destroy();
        }),
    );
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxPayloadBytes,
      perMessageDeflate: options.perMessageDeflate,
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      socket.destroy();
      this.log.debug({ err: err.message }, 'client error');
    });
  }

  /** Listens and registers the node; resolves with the bound port and base URL. */
  async start(): Promise<{ port: number; url: string }> {
    await this.engine.connect();
    await this.engine.broker.start(this.hub.onBrokerMessage);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const { port } = this.server.address() as AddressInfo;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.baseUrl = this.options.publicUrl ?? `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    await this.engine.registry.register(this.nodeInfo());
    this.heartbeat = setInterval(() => this.sweepHeartbeats(), this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
    this.loadReport = setInterval(() => void this.engine.registry.update(this.nodeInfo()).catch(() => undefined), 5000);
    this.loadReport.unref();
    // Presence leases: renew ours every third of the lease; reap the sessions of nodes that died.
    const leaseTick = Math.max(100, Math.floor(this.options.presenceTtlMs / 3));
    this.presenceTimer = setInterval(() => void this.renewPresence(), leaseTick);
    this.presenceTimer.unref();
    this.reapTimer = setInterval(() => void this.reapPresence(), leaseTick + Math.floor(Math.random() * leaseTick));
    this.reapTimer.unref();
    this.unwatchRing = this.engine.ring.onChange((before, after) => this.onRingChange(before, after));
    this.unwatchRegistry = this.engine.registry.onChange((nodes) => {
      this.log.info({ nodes: nodes.map((n) => n.node) }, 'cluster membership changed');
      this.routes.update(nodes);
      this.engine.ring.set(this.routes.ring);
    });
    this.log.info({ url: this.baseUrl, wsPath: this.options.wsPath, engine: this.options.engine }, 'node listening');
    return { port, url: this.baseUrl };
  }

  /** The node's base URL (after `start`). */
  get url(): string {
    return this.baseUrl;
  }

  /** The presence store (NodeContext). */
  get presence() {
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

  // ---- NodeContext ---------------------------------------------------------------------------

  async publish(channel: string, input: PublicationInput, source: PublishSource, key?: string): Promise<PublishOutcome> {
    // Checked before the append: a publication that cannot be serialised would poison history.
    if (nestedDeeperThan(input.data, MAX_DATA_DEPTH)) {
      throw new SwitchboardError('ERR_BAD_FRAME', `data is nested deeper than ${MAX_DATA_DEPTH} levels`);
    }
    const end = this.metrics.publishLatency.startTimer();
    let pub: Publication;
    try {
      if (key === undefined) {
        pub = await this.engine.history.append(channel, input);
      } else {
        const result = await this.engine.history.appendOnce(channel, input, key);
        if (result.duplicate) return { ...result.position, duplicate: true };
        pub = result.pub;
      }
    } catch (err) {
      this.engineFailure(err, 'history append failed');
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable: nothing was published');
    }
    try {
      if (!this.engine.history.publishes) {
        await this.engine.broker.publish(channel, { kind: 'message', epoch: pub.epoch, offset: pub.offset, frame: messageFrame(pub) });
      }
    } catch (err) {
      this.engineFailure(err, 'broker publish failed');
      throw new SwitchboardError('ERR_UNAVAILABLE', 'broker unavailable: the message is in history but was not delivered live');
    }
    end();
    this.metrics.publications.inc({ source });
    return { epoch: pub.epoch, offset: pub.offset, duplicate: false };
  }

  async recover(channel: string, since: StreamPosition | undefined): Promise<{ state: SubscriptionState; replay: Publication[] }> {
    try {
      if (!since) return { state: await this.engine.history.position(channel), replay: [] };
      const limit = this.options.maxRecoveryMessages;
      const page = await this.engine.history.read(channel, since.offset, limit);
      const recovered =
        page.epoch === since.epoch &&
        since.offset <= page.offset &&
        page.firstOffset <= since.offset + 1 &&
        page.offset - since.offset <= limit;
      this.metrics.recoveries.inc({ recovered: String(recovered) });
      return {
        state: { epoch: page.epoch, offset: page.offset, recovered },
        replay: recovered ? page.publications : [],
      };
    } catch (err) {
      this.engineFailure(err, 'history read failed');
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable');
    }
  }

  presenceJoin(session: Session, channel: string): Promise<void> {
    return this.presenceOp(session, channel, 'join');
  }

  presenceLeave(session: Session, channel: string): Promise<void> {
    return this.presenceOp(session, channel, 'leave');
  }

  async sessionGone(session: Session, channels: string[]): Promise<void> {
    if (!this.sessions.delete(session)) return;
    this.metrics.sessions.set(this.sessions.size);
    const mine = this.userSessions.get(session.user);
    mine?.delete(session);
    if (mine?.size === 0) this.userSessions.delete(session.user);
    for (const channel of channels) void this.presenceLeave(session, channel);
    await this.presenceChains.get(session);
  }

  /** Presence changes of one session are applied in order; a user's first join and last leave are announced. */
  private presenceOp(session: Session, channel: string, op: 'join' | 'leave'): Promise<void> {
    const ref = parseChannel(channel);
    if (!ref || ref.kind === 'broadcast') return Promise.resolve();
    const member = this.memberOf(session);
    const previous = this.presenceChains.get(session) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        const changed = op === 'join' ? await this.engine.presence.add(channel, member) : await this.engine.presence.remove(channel, member);
        if (changed && ref.kind === 'group') {
          await this.engine.broker.publish(channel, { kind: 'presence', channel, event: op, user: session.user, ts: Date.now() });
        }
      } catch (err) {
        this.engineFailure(err, `presence ${op} failed`);
      }
    });
    this.presenceChains.set(session, next);
    return next;
  }

  /** Renews the leases of this node's presence entries; re-adds those reaped meanwhile (e.g. after an outage). */
  private async renewPresence(): Promise<void> {
    const entries: PresenceEntry[] = [];
    const byId = new Map<string, Session>();
    for (const session of this.sessions) {
      byId.set(session.id, session);
      const member = this.memberOf(session);
      for (const channel of session.channelNames) if (channel !== BROADCAST) entries.push({ channel, member });
    }
    if (entries.length === 0) return;
    try {
      const lost = await this.engine.presence.refresh(entries);
      for (const { channel, member } of lost) {
        const session = byId.get(member.session);
        if (session && this.sessions.has(session) && session.has(channel)) void this.presenceJoin(session, channel);
      }
    } catch (err) {
      this.engineFailure(err, 'presence refresh failed');
    }
  }

  /** Announces `leave` for users whose last session's lease lapsed (their node died). Exactly once cluster-wide. */
  private async reapPresence(): Promise<void> {
    try {
      for (const { channel, user } of await this.engine.presence.reap()) {
        if (parseChannel(channel)?.kind !== 'group') continue;
        await this.engine.broker.publish(channel, { kind: 'presence', channel, event: 'leave', user, ts: Date.now() });
      }
    } catch (err) {
      this.engineFailure(err, 'presence reap failed');
    }
  }

  /**
   * With hash routing, a ring change moves some users to another owner: their sessions here are
   * closed with 4000 (moved), at random moments over `moveWindowMs`, and reconnect (through the
   * gateway) to their new owner, where they resume. Sessions whose owner did not change are not
   * touched; neither is anything when the ring is first learnt.
   */
  private onRingChange(before: HashRing, after: HashRing): void {
    this.log.info({ nodes: after.nodes }, 'hash ring changed');
    if (this.options.routing !== 'hash' || before.empty || after.empty) return;
    let moved = 0;
    for (const session of this.sessions) {
      const owner = after.nodeFor(session.user);
      if (owner === this.nodeId || !HashRing.moved(before, after, session.user)) continue;
      moved++;
      const timer = setTimeout(() => {
        this.moveTimers.delete(timer);
        session.close(CloseCode.MOVED, `moved to ${owner}`);
      }, Math.floor(Math.random() * this.options.moveWindowMs));
      timer.unref();
      this.moveTimers.add(timer);
    }
    if (moved > 0) this.log.info({ moved, windowMs: this.options.moveWindowMs }, 'moving sessions to their new owners');
  }

  private memberOf(session: Session): PresenceMember {
    return { user: session.user, session: session.id, node: this.nodeId, since: session.since };
  }

  private engineFailure(err: unknown, what: string): void {
    this.metrics.brokerErrors.inc();
    this.log.error({ err }, what);
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendJson(res, 400, { error: { code: 'bad_frame', message: 'bad request URL' } });
    }
    this.log.debug({ method: req.method, url: redactUrl(req.url) }, 'http request');
    const path = url.pathname;
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok', node: this.nodeId });
    if (path === '/readyz') {
      // `connections` feeds the gateway's least-conn policy, which probes /readyz anyway.
      return sendJson(res, this.ready ? 200 : 503, { status: this.ready ? 'ready' : this.draining ? 'draining' : 'unavailable', node: this.nodeId, connections: this.sessions.size });
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
      return void res.end(await this.metrics.registry.metrics());
    }
    if (path.startsWith('/v1/')) return this.api.handle(req, res, url);
    if (path === this.options.wsPath) {
      return sendJson(res, 426, { error: { code: 'bad_frame', message: 'this endpoint speaks WebSocket: send an Upgrade request' } });
    }
    if (this.pages && (await this.pages.handle(req, res, url))) return;
    sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method ?? 'GET'} ${path}` } });
  }

  // ---- WebSocket -----------------------------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return rejectUpgrade(socket, 400, 'Bad Request', 'bad request URL', 'bad_frame');
    }
    this.log.debug({ url: redactUrl(req.url), origin: req.headers.origin }, 'upgrade request');
    if (url.pathname !== this.options.wsPath) return rejectUpgrade(socket, 404, 'Not Found', `no WebSocket endpoint at ${url.pathname}`, 'not_found');
    if (this.draining) return rejectUpgrade(socket, 503, 'Service Unavailable', 'node draining: connect to another node', 'unavailable');
    if (this.sessions.size + this.pendingUpgrades >= this.options.maxConnections) {
      this.metrics.connectionsTotal.inc({ result: 'overloaded' });
      return rejectUpgrade(socket, 503, 'Service Unavailable', 'node at its connection limit', 'unavailable');
    }
    const allowed = this.options.allowedOrigins;
    const origin = req.headers.origin;
    if (allowed.length > 0 && origin !== undefined && !allowed.includes(origin)) {
      this.metrics.connectionsTotal.inc({ result: 'origin' });
      return rejectUpgrade(socket, 403, 'Forbidden', 'origin not allowed', 'forbidden');
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const token = url.searchParams.get('token') ?? bearer;
    const batching = url.searchParams.get('batch') === '1';
    const resumeParam = url.searchParams.get('resume');
    this.pendingUpgrades++;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.pendingUpgrades--;
      void this.onSocket(ws, token, batching, resumeParam);
    });
  }

  private async onSocket(ws: WebSocket, token: string | undefined, batching: boolean, resumeParam: string | null): Promise<void> {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    let identity: Identity;
    try {
      if (!token) throw new TokenError('missing token');
      identity = await this.verifier.verify(token);
    } catch (err) {
      const reason = err instanceof TokenError ? err.message : 'invalid token';
      this.metrics.connectionsTotal.inc({ result: 'unauthorized' });
      this.metrics.closes.inc({ code: String(CloseCode.UNAUTHORIZED) });
      this.log.info({ reason }, 'token rejected');
      return ws.close(CloseCode.UNAUTHORIZED, reason);
    }
    if (this.draining) return ws.close(CloseCode.GOING_AWAY, 'node draining');
    const mine = this.userSessions.get(identity.user) ?? new Set<Session>();
    if (mine.size >= this.options.maxConnectionsPerUser) {
      this.metrics.connectionsTotal.inc({ result: 'user_limit' });
      this.metrics.closes.inc({ code: String(CloseCode.POLICY) });
      return ws.close(CloseCode.POLICY, `too many connections for this user (max ${this.options.maxConnectionsPerUser})`);
    }
    const session = new Session(ws, identity, this, batching);
    this.sessions.add(session);
    mine.add(session);
    this.userSessions.set(identity.user, mine);
    this.metrics.sessions.set(this.sessions.size);
    this.metrics.connectionsTotal.inc({ result: 'ok' });

    const auto = autoChannels(identity);
    const resume = resumeParam === null ? {} : decodeResume(resumeParam);
    const positions: Record<string, StreamPosition> = {};
    for (const [channel, pos] of Object.entries(resume ?? {})) {
      const ref = parseChannel(channel);
      if (!ref || subscribeDenial(identity, channel, ref)) continue;
      positions[channel] = pos;
      if (!auto.includes(channel) && auto.length < this.options.maxSubscriptions) auto.push(channel);
    }
    await session.start(auto, positions);
    if (resume === undefined) session.reply(undefined, { ok: false, code: 'bad_frame', message: 'resume is not base64url JSON of {channel: {epoch, offset}}: nothing was recovered' });
  }

  /**
   * Drops peers that did not answer the last ping and pings the others. Done in slices with the
   * event loop free in between, so that pinging 10,000 sessions does not hold up message delivery.
   */
  private sweepHeartbeats(): void {
    const sessions = [...this.sessions];
    const slice = (from: number): void => {
      const end = Math.min(from + HEARTBEAT_SLICE, sessions.length);
      for (let i = from; i < end; i++) {
        const session = sessions[i]!;
        if (!this.sessions.has(session)) continue;
        if (!session.alive) {
          this.log.debug({ session: session.id }, 'peer missed heartbeat');
          session.terminate();
          continue;
        }
        session.alive = false;
        session.ping();
      }
      if (end < sessions.length) setImmediate(slice, end);
    };
    slice(0);
  }


  private nodeInfo() {
    return { node: this.nodeId, url: this.baseUrl, connections: this.sessions.size, startedAt: this.startedAt };
  }

  private readonly startedAt = Date.now();
  /** The live nodes' ring with their URLs, for `GET /v1/route` (the same ring as `engine.ring`). */
  private readonly routes = new NodeRing();

  // ---- lifecycle -----------------------------------------------------------------------------

  /**
   * Graceful shutdown: `/readyz` turns 503 and new upgrades get 503 at once, every session is
   * closed with 1001, then the node stops. Sessions still open after `drainTimeoutMs` are cut.
   */
  drain(): Promise<void> {
    this.drained ??= (async () => {
      this.draining = true;
      this.log.info({ sessions: this.sessions.size }, 'draining');
      for (const session of [...this.sessions]) session.close(CloseCode.GOING_AWAY, 'node draining');
      // Leave half a second of the budget for stopping, so the process exits within drainTimeoutMs.
      const deadline = Date.now() + Math.max(0, this.options.drainTimeoutMs - 500);
      while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await this.stop();
    })();
    return this.drained;
  }

  /** Stops at once: sockets are cut, the server and the engine are closed. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.draining = true;
      clearInterval(this.heartbeat);
      clearInterval(this.loadReport);
      clearInterval(this.presenceTimer);
      clearInterval(this.reapTimer);
      this.unwatchRegistry?.();
      this.unwatchRing?.();
      for (const timer of this.moveTimers) clearTimeout(timer);
      for (const ws of this.sockets) ws.terminate();
      for (const session of [...this.sessions]) await session.dispose();
      this.wss.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      const e = this.engine;
      await Promise.allSettled([e.registry.close(), e.broker.close(), e.history.close(), e.presence.close()]);
      await e.close();
      this.log.info('stopped');
    })();
    return this.stopped;
  }
}
