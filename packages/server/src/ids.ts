import { randomBytes } from 'node:crypto';

/**
 * A source of ids unique across processes and restarts without random bytes per id: a random
 * base drawn once (72 bits, base64url) and a counter. For identifiers that must not collide —
 * session ids, history epochs — not for secrets: the next id of a source is easy to guess.
 */
export function uniqueIds(prefix = ''): () => string {
  const base = `${prefix}${randomBytes(9).toString('base64url')}`;
  let counter = 0;
  return () => base + (counter++).toString(36);
}
