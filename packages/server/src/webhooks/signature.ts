import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header every webhook POST carries. */
export const SIGNATURE_HEADER = 'Switchboard-Signature';

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with `secret`. */
export function signWebhook(secret: string, body: string, seconds = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${seconds}.${body}`).digest('hex');
  return `t=${seconds},v1=${mac}`;
}

/**
 * What a receiver checks: the header's signature over `body` is the secret's, and its time is
 * within `toleranceSeconds` of now (a replayed old request fails). Constant-time comparison.
 */
export function verifyWebhook(secret: string, body: string, header: string | undefined, toleranceSeconds = 300): boolean {
  if (!header) return false;
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const seconds = Number(parts.get('t'));
  const given = parts.get('v1');
  if (!Number.isSafeInteger(seconds) || !given || Math.abs(Date.now() / 1000 - seconds) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, body, seconds).split('v1=')[1]!, 'hex');
  const actual = Buffer.from(given, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
