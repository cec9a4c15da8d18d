import type { IncomingMessage } from 'node:http';
import type { ErrorName } from '../errors.js';
import { bearerToken } from './bearer.js';

/** The checks every WebSocket upgrade passes, on a node and on the gateway alike. */
export interface UpgradeRules {
  /** The WebSocket endpoint's path. */
  wsPath: string;
  /** Exact origins allowed to open a socket; empty: any. */
  allowedOrigins: readonly string[];
  /** Why the server takes no connection now (draining, full), or `undefined` when it does. */
  refusal: () => string | undefined;
}

/** An upgrade that may go on, with what it carries. */
export interface AdmittedUpgrade {
  ok: true;
  url: URL;
  /** The token from `?token=` or `Authorization: Bearer`; not verified yet. */
  token: string | undefined;
}

/** An upgrade turned away, and why: a catalog error and the metric label. */
export interface RefusedUpgrade {
  ok: false;
  error: ErrorName;
  message: string;
  /** `url`, `path`, `unavailable` or `origin`. */
  reason: 'url' | 'path' | 'unavailable' | 'origin';
}

/**
 * Checks an upgrade request in order: a parsable URL, the endpoint's path, the server taking
 * connections, an allowed origin (browsers send `Origin`; a request without one is not a browser's
 * and is let through, as the token still has to pass). Token verification comes after, by the caller.
 */
export function checkUpgrade(req: IncomingMessage, rules: UpgradeRules): AdmittedUpgrade | RefusedUpgrade {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return { ok: false, error: 'ERR_BAD_FRAME', message: 'bad request URL', reason: 'url' };
  }
  if (url.pathname !== rules.wsPath)
    return { ok: false, error: 'ERR_NOT_FOUND', message: `no WebSocket endpoint at ${url.pathname}`, reason: 'path' };
  const refusal = rules.refusal();
  if (refusal !== undefined) return { ok: false, error: 'ERR_UNAVAILABLE', message: refusal, reason: 'unavailable' };
  const origin = req.headers.origin;
  if (rules.allowedOrigins.length > 0 && origin !== undefined && !isAllowedOrigin(origin, rules.allowedOrigins)) {
    return { ok: false, error: 'ERR_FORBIDDEN', message: 'origin not allowed', reason: 'origin' };
  }
  return { ok: true, url, token: url.searchParams.get('token') ?? bearerToken(req) };
}

/**
 * Whether `origin` is the same origin (RFC 6454 §5) as one of `allowed`: scheme and host compare
 * without regard to ASCII case, and `https://h:443` / `http://h:80` are `https://h` / `http://h`.
 * Nothing else is normalized, so a path, userinfo, a trailing dot, `null` or two joined `Origin`
 * headers never equal an entry (entries are `scheme://host[:port]`).
 */
function isAllowedOrigin(origin: string, allowed: readonly string[]): boolean {
  const key = originKey(origin);
  return allowed.some((entry) => originKey(entry) === key);
}

function originKey(origin: string): string {
  const lower = origin.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return lower.replace(/^(https:\/\/[^/:@]+):443$|^(http:\/\/[^/:@]+):80$/, '$1$2');
}
