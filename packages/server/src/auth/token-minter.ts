import { SignJWT } from 'jose';

/** What to put in a minted token. */
export interface MintOptions {
  user: string;
  groups?: string[];
  channels?: string[];
  admin?: boolean;
  /** Lifetime in seconds. @default 3600 */
  ttlSeconds?: number;
}

/** Mints an HS256 client token, as `switchboard token` and the dev endpoint do. */
export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (options.groups?.length) claims.groups = options.groups;
  if (options.channels?.length) claims.channels = options.channels;
  if (options.admin) claims.role = 'admin';
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.ttlSeconds ?? 3600))
    .sign(new TextEncoder().encode(secret));
}

/** Parses a duration such as `90s`, `15m`, `1h`, `7d` or a bare number of seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!match) throw new Error(`invalid duration "${text}": use e.g. 90s, 15m, 1h, 7d`);
  const n = Number(match[1]);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}
