import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { SwitchboardError } from '../errors.js';
import { readBody, sendError, sendThrown } from '../http/respond.js';
import { redactUrl } from '../logger.js';
import type { NodeHealth, NodeState } from './health.js';
import type { GatewayMetrics } from './metrics.js';

/** Options of {@link HttpProxy}. */
export interface HttpProxyOptions {
  health: NodeHealth;
  log: Logger;
  metrics: GatewayMetrics;
  /** Largest request body forwarded (the nodes' `maxPayloadBytes`); a bigger one gets 413 here. */
  maxBodyBytes: number;
  /** A node that does not answer within this fails the request with 503. */
  timeoutMs: number;
  /** The client side is TLS (sets `X-Forwarded-Proto`). */
  secure: boolean;
}

/** Headers that describe one hop, not the request (RFC 9110 §7.6.1), plus `host`, which the node's address sets. */
const HOP_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
]);

/** Hop-by-hop headers of a response (its `content-length` is kept: the body is passed on as it is). */
const RESPONSE_HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Nodes tried for one request whose connection was refused. */
const MAX_ATTEMPTS = 3;

/**
 * Forwards plain HTTP requests (`/v1/*` and anything the gateway does not answer itself) to any
 * live node, in turn. Every node answers every `/v1` call for the whole cluster (presence,
 * history and the registry are shared), so which node answers does not matter. The body is read
 * first (it is small: at most `maxPayloadBytes`), so a request whose connection a node refused can
 * go to the next node without having been half sent; a request that reached a node is never
 * repeated, since a publish must not happen twice.
 */
export class HttpProxy {
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 64 });
  private turn = 0;

  constructor(private readonly options: HttpProxyOptions) {}

  /** Forwards `req` and writes the node's answer to `res`. */
  async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, this.options.maxBodyBytes);
    } catch (err) {
      return sendThrown(res, err);
    }
    const tried = new Set<string>();
    for (;;) {
      const live = this.options.health.live().filter((n) => !tried.has(n.id));
      if (live.length === 0 || tried.size >= MAX_ATTEMPTS) {
        this.options.metrics.httpForwarded.inc({ status: 'error' });
        return sendError(res, 'ERR_UNAVAILABLE', 'no node is ready: try again later');
      }
      const node = live[this.turn++ % live.length]!;
      const outcome = await this.attempt(node, req, res, body);
      if (outcome === 'done') return;
      tried.add(node.id);
      this.options.health.markDown(node.id, 'connection refused');
    }
  }

  /** Stops keeping idle connections to nodes. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** One try; 'refused' when the node could not be reached at all (nothing was sent). */
  private attempt(node: NodeState, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<'done' | 'refused'> {
    const { log, metrics } = this.options;
    const target = new URL(req.url ?? '/', node.info.url);
    const secure = target.protocol === 'https:';
    const headers = forwardHeaders(req.headers, req.socket.remoteAddress ?? 'unknown', this.options.secure);
    headers['content-length'] = String(body.length);
    return new Promise((resolve) => {
      const upstream = (secure ? httpsRequest : httpRequest)(target, {
        method: req.method,
        headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        timeout: this.options.timeoutMs,
      });
      upstream.on('timeout', () => upstream.destroy(new Error(`no answer within ${this.options.timeoutMs} ms`)));
      upstream.on('response', (answer) => {
        metrics.httpForwarded.inc({ status: `${Math.floor((answer.statusCode ?? 500) / 100)}xx` });
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers))
          if (value !== undefined && !RESPONSE_HOP_HEADERS.has(name)) out[name] = value;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('end', () => resolve('done'));
        res.on('close', () => resolve('done'));
      });
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        if (res.headersSent) {
          res.destroy();
          return resolve('done');
        }
        // Refused (or not reachable): the request never reached the node, so another may take it.
        if (err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') {
          log.warn({ target: node.id, err: err.message }, 'node refused an HTTP request; trying another');
          return resolve('refused');
        }
        log.warn({ target: node.id, err: err.message, url: redactUrl(req.url) }, 'forwarded request failed');
        metrics.httpForwarded.inc({ status: 'error' });
        sendThrown(res, new SwitchboardError('ERR_UNAVAILABLE', `node ${node.id} did not answer: ${err.message}`));
        resolve('done');
      });
      upstream.end(body);
    });
  }
}

function forwardHeaders(incoming: IncomingHttpHeaders, remote: string, secure: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_HEADERS.has(name)) continue;
    out[name] = value;
  }
  const prior = incoming['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${String(prior)}, ${remote}` : remote;
  out['x-forwarded-proto'] = secure ? 'https' : 'http';
  if (incoming.host) out['x-forwarded-host'] = incoming.host;
  return out;
}
