import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { ERRORS, SwitchboardError, errorBody, type ErrorName } from '../errors.js';

/** Writes a JSON body with `status` (and any extra `headers`). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Writes the catalog error `name` as `{"error":{code,message}}` (with any extra `headers`, e.g. `retry-after`). */
export function sendError(res: ServerResponse, name: ErrorName, message: string, headers?: Record<string, string>): void {
  sendJson(res, ERRORS[name].status, { error: { code: ERRORS[name].code, message } }, headers);
}

/** Writes any thrown value as an error body; unknown errors become 500 `internal`. */
export function sendThrown(res: ServerResponse, err: unknown): void {
  const status = err instanceof SwitchboardError ? err.status : 500;
  sendJson(res, status, { error: errorBody(err) });
}

/** Answers an upgrade request with the catalog error `name` as plain HTTP and closes the socket. */
export function rejectUpgrade(socket: Duplex, name: ErrorName, message: string): void {
  const { status, code } = ERRORS[name];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/**
 * Reads a JSON object body of at most `limit` bytes.
 * @throws SwitchboardError `too_large` (413) or `bad_frame` (400).
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit);
  // Decoding would turn bad bytes into U+FFFD and publish what the sender never wrote (a text
  // frame with them closes 1007 for the same reason).
  if (!isUtf8(body)) throw new SwitchboardError('ERR_BAD_FRAME', 'body is not valid UTF-8');
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new SwitchboardError('ERR_BAD_FRAME', 'body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SwitchboardError('ERR_BAD_FRAME', 'body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Reads a request body of at most `limit` bytes.
 * @throws SwitchboardError `too_large` (413), from the declared length or while reading.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new SwitchboardError('ERR_TOO_LARGE', `body over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new SwitchboardError('ERR_TOO_LARGE', `body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
