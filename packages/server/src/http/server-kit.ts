import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { redactUrl } from '../logger.js';
import { fanOutAccept } from '../net/accept-fanout.js';
import { sendError, sendJson } from './respond.js';

/** Options of {@link createServer}. */
export interface ServerKitOptions {
  /** Time a client has to send its request head (and the whole request). */
  handshakeTimeoutMs: number;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
}

/** The answer to a request Node's parser gave up on, as Node's own default handler chooses it; else 400. */
const CLIENT_ERROR_STATUS: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * The HTTP server node and gateway share: request timeouts, a handler whose failure is logged and
 * answered 500 `internal` (never an unhandled rejection), and 400 for malformed requests (431 for
 * headers over Node's 16 KB, 408 for a request head not sent within `handshakeTimeoutMs`).
 */
export function createServer(
  options: ServerKitOptions,
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  log: Logger,
): Server {
  const serverOptions = {
    headersTimeout: options.handshakeTimeoutMs,
    requestTimeout: options.handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, options.handshakeTimeoutMs),
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handler(req, res).catch((err: unknown) => {
      log.error({ err, url: redactUrl(req.url) }, 'request failed');
      if (!res.headersSent) sendError(res, 'ERR_INTERNAL', 'internal error');
      else res.destroy();
    });
  };
  const server = options.tls
    ? createHttpsServer({ ...serverOptions, ...options.tls }, onRequest)
    : createHttpServer(serverOptions, onRequest);
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable) socket.end(`HTTP/1.1 ${CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
    socket.destroy();
    log.debug({ err: err.message }, 'client error');
  });
  return server;
}

/** Extra accept handles of a listening server (see {@link listen}), closed with it. */
const fannedOut = new WeakMap<Server, Promise<() => Promise<void>>>();

/** How {@link listen} accepts: `acceptPerTurn` connections per event-loop turn at most. */
export interface AcceptOptions {
  acceptPerTurn: number;
  log: Logger;
}

/**
 * Listens on `host:port`; resolves with the bound port and the base URL clients use. With
 * `accept.acceptPerTurn` above 1 the socket gets that many accept handles (net/accept-fanout.ts).
 */
export async function listen(
  server: Server,
  port: number,
  host: string,
  secure = false,
  accept?: AcceptOptions,
): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  if (accept && accept.acceptPerTurn > 1) {
    // In the background: the server serves at once, the extra handles join a moment later.
    const { log } = accept;
    const extra = fanOutAccept(server, accept.acceptPerTurn - 1).catch((err: Error) => {
      log.warn({ err: err.message }, 'could not add accept handles: one connection accepted per event-loop turn');
      return async () => undefined;
    });
    fannedOut.set(server, extra);
  }
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return { port: bound, url: `${secure ? 'https' : 'http'}://${shown}:${bound}` };
}

/** Closes the server, its extra accept handles and every connection it holds. */
export async function closeServer(server: Server): Promise<void> {
  const closeExtra = await fannedOut.get(server);
  // Each closes when its connections have: those the main server's closeAllConnections ends too.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const extraClosed = closeExtra?.();
  server.closeAllConnections();
  await Promise.all([closed, extraClosed]);
}

/** What `/metrics` answers: a prom-client registry, or the sum over a gateway's workers. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** What `/healthz`, `/readyz` and `/metrics` answer. */
export interface Probes {
  /** The `/healthz` body (200). */
  health: () => Record<string, unknown>;
  /** Whether `/readyz` is 200 or 503, and its body. */
  readiness: () => { ready: boolean; body: Record<string, unknown> };
  metrics: MetricsSource;
}

/** The request URL, or `undefined` after answering 400 for one that does not parse. */
export function requestUrl(req: IncomingMessage, res: ServerResponse): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    sendError(res, 'ERR_BAD_FRAME', 'bad request URL');
    return undefined;
  }
}

/** Answers the probe routes; false for any other path. */
export async function answerProbe(path: string, res: ServerResponse, probes: Probes): Promise<boolean> {
  switch (path) {
    case '/healthz':
      sendJson(res, 200, probes.health());
      return true;
    case '/readyz': {
      const { ready, body } = probes.readiness();
      sendJson(res, ready ? 200 : 503, body);
      return true;
    }
    case '/metrics': {
      let text: string;
      try {
        text = await probes.metrics.metrics();
      } catch (err) {
        sendError(res, 'ERR_UNAVAILABLE', `metrics unavailable: ${(err as Error).message}`);
        return true;
      }
      res.writeHead(200, { 'content-type': probes.metrics.contentType });
      res.end(text);
      return true;
    }
    default:
      return false;
  }
}
