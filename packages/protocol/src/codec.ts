import type { StreamPosition } from './frames.js';

/** Encodes a `?resume=` value: base64url of JSON `{channel: {epoch, offset}}`. */
export function encodeResume(positions: Record<string, StreamPosition>): string {
  return base64UrlEncode(JSON.stringify(positions));
}

/**
 * Decodes a `?resume=` value. Returns `undefined` when it is not valid base64url JSON of the
 * expected shape; entries with a wrong shape are dropped.
 */
export function decodeResume(value: string): Record<string, StreamPosition> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(base64UrlDecode(value));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const out: Record<string, StreamPosition> = Object.create(null) as Record<string, StreamPosition>;
  for (const [channel, pos] of Object.entries(parsed as Record<string, unknown>)) {
    if (isStreamPosition(pos)) out[channel] = { epoch: pos.epoch, offset: pos.offset };
  }
  return out;
}

/** True for `{epoch: string, offset: non-negative safe integer}`. */
export function isStreamPosition(value: unknown): value is StreamPosition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.epoch === 'string' && v.epoch.length <= 64 && typeof v.offset === 'number' && Number.isSafeInteger(v.offset) && v.offset >= 0
  );
}

function base64UrlEncode(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64UrlDecode(value: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) throw new Error('not base64url');
  const b64 = value.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}
