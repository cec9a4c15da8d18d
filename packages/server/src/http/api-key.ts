import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bearerToken } from './bearer.js';

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
    const key = bearerToken(req);
    if (key === undefined) return false;
    return timingSafeEqual(digest(key), this.expected);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
