import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isValidId } from '@switchboard/protocol';
import { mintToken } from '../auth/token-minter.js';
import { sendError, sendJson } from './respond.js';

const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
const FILES = new Set(['index.html', 'demo.js', 'demo.css']);
/** The SDK's browser bundle, served to the demo page (and to anyone trying the SDK in dev). */
const SDK_BUNDLE = join(dirname(createRequire(import.meta.url).resolve('@switchboard/client/package.json')), 'dist', 'switchboard.min.js');

/** Options of {@link DevPages}. */
export interface DevPagesOptions {
  /** When set (dev mode only), `GET /dev/token` mints tokens with it. */
  devSecret: string | undefined;
  wsPath: string;
}

/**
 * The demo page at `/` (modes `start` and `dev`), and in dev mode only the token endpoint the
 * demo signs in with. `switchboard node` has neither.
 */
export class DevPages {
  constructor(private readonly options: DevPagesOptions) {}

  /** Serves the request when it is one of ours; false otherwise. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (url.pathname === '/dev/token') {
      if (!this.options.devSecret) return false;
      await this.token(res, url);
      return true;
    }
    if (url.pathname === '/config.json') {
      sendJson(res, 200, { wsPath: this.options.wsPath, dev: this.options.devSecret !== undefined });
      return true;
    }
    if (url.pathname === '/switchboard.min.js') {
      const body = await readFile(SDK_BUNDLE);
      res.writeHead(200, { 'content-type': TYPES['.js']!, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    }
    const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    if (!FILES.has(name)) return false;
    const body = await readFile(PUBLIC_DIR + name);
    res.writeHead(200, { 'content-type': TYPES[extname(name)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }

  private async token(res: ServerResponse, url: URL): Promise<void> {
    const user = url.searchParams.get('user') ?? '';
    const groups = (url.searchParams.get('groups') ?? '').split(',').filter(Boolean);
    if (!isValidId(user) || !groups.every(isValidId)) {
      return sendError(res, 'ERR_BAD_FRAME', 'user and groups must be ids (no spaces or colons)');
    }
    const token = await mintToken(this.options.devSecret!, {
      user,
      groups,
      ttlSeconds: 3600,
      admin: url.searchParams.get('admin') === '1',
    });
    sendJson(res, 200, { token, user, groups, expiresIn: 3600 });
  }
}
