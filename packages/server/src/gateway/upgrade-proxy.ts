import type { IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { CloseCode } from '@switchboard/protocol';
import { TokenError, type Verifier } from '../auth/token-verifier.js';
import { rejectUpgrade } from '../http/respond.js';
import { checkUpgrade } from '../http/upgrade-checks.js';
import { redactUrl } from '../logger.js';
import type { NodeHealth, NodeState } from './health.js';
import type { GatewayMetrics } from './metrics.js';
import type { Policy } from './policy.js';

/** Options of {@link UpgradeProxy}. */
export interface UpgradeProxyOptions {
  wsPath: string;
  /** Exact origins allowed (empty: any), checked like a node does, before the token. */
  allowedOrigins: readonly string[];
  verifier: Verifier;
  health: NodeHealth;
  policy: Policy;
  log: Logger;
  metrics: GatewayMetrics;
  /** The client side is TLS (sets `X-Forwarded-Proto`). */
  secure: boolean;
  /** A node that does not accept the TCP connection within this is skipped. */
  connectTimeoutMs: number;
  /** True while the gateway is shutting down: new upgrades get 503. */
  draining: () => boolean;
}

/** Nodes tried for one upgrade before giving up with 503. */
const MAX_ATTEMPTS = 3;

/**
 * Proxies WebSocket upgrades to nodes as raw bytes. The gateway checks the request (path, origin,
 * token) once, picks a node by policy and replays the client's upgrade request to it; from then on
 * it copies bytes both ways and never parses a frame, so the node's `welcome`, replies, pings and
 * close frames reach the client exactly as sent. The node checks the token again, as it always
 * does: the gateway's check only rejects early, before a node is bothered.
 */
export class UpgradeProxy {
  private readonly wss = new WebSocketServer({ noServer: true, clientTracking: false });
  private readonly sockets = new Set<Duplex>();

  constructor(private readonly options: UpgradeProxyOptions) {}

  /** Connections being proxied now. */
  get connections(): number {
    return this.sockets.size / 2;
  }

  /** The HTTP server's `upgrade` handler. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const { log, metrics } = this.options;
    if (log.isLevelEnabled('debug')) log.debug({ url: redactUrl(req.url), origin: req.headers.origin }, 'upgrade request');
    // The same checks as a node's, from the same code (http/upgrade-checks.ts).
    const check = checkUpgrade(req, {
      wsPath: this.options.wsPath,
      allowedOrigins: this.options.allowedOrigins,
      refusal: () => (this.options.draining() ? 'gateway shutting down: connect again' : undefined),
    });
    if (!check.ok) {
      if (check.reason === 'origin') metrics.upgrades.inc({ result: 'rejected' });
      return rejectUpgrade(socket, check.error, check.message);
    }
    void this.authorize(check.token).then((result) => {
      if (socket.destroyed) return;
      if ('reason' in result) {
        metrics.upgrades.inc({ result: 'unauthorized' });
        log.info({ reason: result.reason }, 'token rejected at the gateway');
        // Like a node: complete the upgrade, send no welcome, close with 4001 so a browser can
        // tell a bad token from a network fault.
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          // A bad frame from the client now is an 'error' event (ws closes the socket itself); unheard it would throw.
          ws.on('error', (err) => log.debug({ err: err.message }, 'protocol error on a refused socket: closed'));
          ws.close(CloseCode.UNAUTHORIZED, result.reason);
        });
        return;
      }
      this.forward(req, socket, head, result.user, new Set());
    });
  }

  /** Destroys every proxied connection (the gateway is stopping). */
  closeAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private async authorize(token: string | undefined): Promise<{ user: string } | { reason: string }> {
    try {
      if (!token) throw new TokenError('missing token');
      return { user: (await this.options.verifier.verify(token)).user };
    } catch (err) {
      return { reason: err instanceof TokenError ? err.message : 'invalid token' };
    }
  }

  /** Connects to a node picked by policy, skipping `tried` ones, and splices the two sockets. */
  private forward(req: IncomingMessage, client: Duplex, head: Buffer, user: string, tried: Set<string>): void {
    const { health, policy, metrics, log } = this.options;
    const live = health.live().filter((n) => !tried.has(n.id));
    if (live.length === 0 || tried.size >= MAX_ATTEMPTS) {
      metrics.upgrades.inc({ result: tried.size > 0 ? 'connect_failed' : 'no_node' });
      return rejectUpgrade(client, 'ERR_UNAVAILABLE', 'no node is ready: try again later');
    }
    const node = policy.pick(user, live, health.ring);
    health.sentTo(node);
    const target = new URL(node.info.url);
    const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
    const host = target.hostname.replace(/^\[|\]$/g, '');
    const secure = target.protocol === 'https:';
    const upstream = secure ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port });
    let connected = false;
    const abandon = () => upstream.destroy();
    client.once('close', abandon);
    upstream.setTimeout(this.options.connectTimeoutMs, () =>
      upstream.destroy(new Error(`no connection within ${this.options.connectTimeoutMs} ms`)),
    );
    upstream.once('error', (err) => {
      client.off('close', abandon);
      if (connected || client.destroyed) return;
      // Nothing reached the node, so another one can take the connection.
      log.warn({ target: node.id, err: err.message }, 'node refused the connection; trying another');
      health.markDown(node.id, `connect failed: ${err.message}`);
      tried.add(node.id);
      this.forward(req, client, head, user, tried);
    });
    upstream.once(secure ? 'secureConnect' : 'connect', () => {
      connected = true;
      client.off('close', abandon);
      upstream.setTimeout(0);
      if (client.destroyed) return void upstream.destroy();
      metrics.upgrades.inc({ result: 'proxied' });
      upstream.write(this.requestHead(req, client));
      if (head.length > 0) upstream.write(head);
      this.splice(client, upstream, node);
    });
  }

  /** The client's upgrade request as the node should see it, with X-Forwarded-For/-Proto added. */
  private requestHead(req: IncomingMessage, client: Duplex): string {
    const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
    let forwardedFor: string | undefined;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const value = req.rawHeaders[i + 1]!;
      const lower = name.toLowerCase();
      if (lower === 'x-forwarded-for') forwardedFor = forwardedFor ? `${forwardedFor}, ${value}` : value;
      else if (lower !== 'x-forwarded-proto') lines.push(`${name}: ${value}`);
    }
    const remote = (client as Duplex & { remoteAddress?: string }).remoteAddress ?? 'unknown';
    lines.push(`X-Forwarded-For: ${forwardedFor ? `${forwardedFor}, ${remote}` : remote}`);
    lines.push(`X-Forwarded-Proto: ${this.options.secure ? 'https' : 'http'}`);
    return lines.join('\r\n') + '\r\n\r\n';
  }

  /**
   * Copies bytes both ways. An end on one side is passed on (the WebSocket closing handshake ends
   * with the node closing TCP); an error, or a close, on one side closes the other, which is cut
   * after a grace period if it does not finish by itself.
   */
  private splice(client: Duplex, upstream: Duplex, node: NodeState): void {
    const { metrics } = this.options;
    this.sockets.add(client);
    this.sockets.add(upstream);
    node.open++;
    metrics.connections.inc({ target: node.id });
    for (const s of [client, upstream]) (s as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    client.pipe(upstream);
    upstream.pipe(client);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      node.open--;
      metrics.connections.dec({ target: node.id });
    };
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', destroyBoth);
    upstream.on('error', destroyBoth);
    const onClose = (self: Duplex, other: Duplex) => () => {
      this.sockets.delete(self);
      finish();
      if (other.destroyed) return;
      other.end();
      setTimeout(() => other.destroy(), 2000).unref();
    };
    client.on('close', onClose(client, upstream));
    upstream.on('close', onClose(upstream, client));
  }
}
