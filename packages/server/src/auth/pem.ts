import { existsSync, readFileSync } from 'node:fs';

/**
 * A PEM value given as text or as the path of a file holding it.
 * @throws Error naming `option` when it is neither.
 */
export function readPem(value: string, option: string): string {
  if (value.includes('-----BEGIN')) return value;
  if (existsSync(value)) return readFileSync(value, 'utf8');
  throw new Error(`${option} is neither PEM text nor a readable file`);
}
