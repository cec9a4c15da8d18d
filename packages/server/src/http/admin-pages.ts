import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ADMIN_DIR = fileURLToPath(new URL('../../public/admin/', import.meta.url));
const UPLOT_DIR = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');

/** What `/admin/…` serves: the page, its script and style, and uPlot (the charts), all local. */
const FILES: Record<string, { path: string; type: string }> = {
  '/admin': { path: join(ADMIN_DIR, 'admin.html'), type: 'text/html; charset=utf-8' },
  '/admin/': { path: join(ADMIN_DIR, 'admin.html'), type: 'text/html; charset=utf-8' },
  '/admin/admin.js': { path: join(ADMIN_DIR, 'admin.js'), type: 'text/javascript; charset=utf-8' },
  '/admin/admin.css': { path: join(ADMIN_DIR, 'admin.css'), type: 'text/css; charset=utf-8' },
  '/admin/uplot.js': { path: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/admin/uplot.css': { path: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/**
 * Nothing but this server: no CDN, no frame around it, no referrer (the key may sit in the
 * fragment, which browsers never send, but a referrer policy costs nothing).
 */
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

/**
 * The admin dashboard's static files, on every node and on the gateway. The page holds no data:
 * it asks the `/v1` API with the key the operator types (or gives in `#key=…`), so nothing is shown
 * before the key is, and the page is only as open as the API.
 */
export async function serveAdmin(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const file = FILES[url.pathname];
  if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  const body = await readFile(file.path);
  res.writeHead(200, { ...HEADERS, 'content-type': file.type, 'content-length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
