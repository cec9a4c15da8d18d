import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Checks `Authorization: Bearer <key>` in constant time (both sides hashed to equal length). */
export class ApiKeyCheck {
  private readonly expected: Buffer | undefined;

  constructor(apiKey: string | undefined) {
    this.expected = apiKey === undefined ? undefined : digest(apiKey);
  }

  /** True when an API key is configured. */
  get configured(): boolean {
    return this.expected !== undefined;
  }

  /** True when the request carries the configured key. */
  allows(req: IncomingMessage): boolean {
    if (!this.expected) return false;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match) return false;
    return timingSafeEqual(digest(match[1]!.trim()), this.expected);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
