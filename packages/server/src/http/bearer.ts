import type { IncomingMessage } from 'node:http';

const BEARER = /^Bearer\s+(.+)$/i;

/** The credential of an `Authorization: Bearer <credential>` header (trimmed), if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return BEARER.exec(req.headers.authorization ?? '')?.[1]?.trim();
}
