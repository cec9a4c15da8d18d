import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { redactUrl } from '../logger.js';
import type { HttpApi } from './api.js';
import { serveAdmin } from './admin-pages.js';
import type { DevPages } from './dev-pages.js';
import type { HttpLimits } from './http-limits.js';
import { sendError } from './respond.js';
import { answerProbe, requestUrl, type Probes } from './server-kit.js';

/** What a node's HTTP routes are made of. */
export interface NodeRoutesDeps {
  probes: Probes;
  api: HttpApi;
  /** The per-address limits of `/v1` (the probes are never limited). */
  limits: HttpLimits;
  /** The demo page and dev endpoints (`start` and `dev` modes). */
  pages: DevPages | undefined;
  /** The WebSocket endpoint, which answers plain HTTP with 426. */
  wsPath: string;
  log: Logger;
}

/** A node's HTTP request handler: probes, `/v1`, the admin dashboard, the WebSocket path, the demo pages, else 404. */
export function nodeRoutes(deps: NodeRoutesDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const url = requestUrl(req, res);
    if (!url) return;
    if (deps.log.isLevelEnabled('debug')) deps.log.debug({ method: req.method, url: redactUrl(req.url) }, 'http request');
    const path = url.pathname;
    if (await answerProbe(path, res, deps.probes)) return;
    if (path.startsWith('/v1/')) return deps.limits.serve(req, res, () => deps.api.handle(req, res, url));
    if ((path === '/admin' || path.startsWith('/admin/')) && (await serveAdmin(req, res, url))) return;
    if (path === deps.wsPath) return sendError(res, 'ERR_UPGRADE_REQUIRED', 'this endpoint speaks WebSocket: send an Upgrade request');
    if (deps.pages && (await deps.pages.handle(req, res, url))) return;
    sendError(res, 'ERR_NOT_FOUND', `no route ${req.method ?? 'GET'} ${path}`);
  };
}
