/**
 * Small helpers shared by the runner, the workers and the peers: a clock every process on this
 * machine agrees on, bounded waits, and the statistics the report is made of.
 */

/**
 * Microseconds on the monotonic clock. `process.hrtime` reads CLOCK_MONOTONIC, which is one clock
 * for every process on the machine, so a send time stamped by one process can be subtracted from a
 * receive time read in another (the wall clock could step between them; this one cannot).
 */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects with `what` timed out when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `check` every `everyMs` until it returns true or `ms` have passed; returns whether it did.
 * Every wait in the bench is one of these or a `withTimeout`: nothing waits without a bound.
 */
export async function waitUntil(check: () => boolean, ms: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Median, minimum and maximum of a set of runs. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The median (mean of the middle two for an even count) and the range; NaN for no values. */
export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}

/** Formats a number for people: 3 significant digits, thousands as k, millions as M. */
export function human(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return '—';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${trim((value / 1e6).toPrecision(digits))}M`;
  if (abs >= 1e4) return `${trim((value / 1e3).toPrecision(digits))}k`;
  if (abs >= 100) return String(Math.round(value));
  if (abs === 0) return '0';
  return trim(value.toPrecision(digits));
}

function trim(s: string): string {
  return s.includes('.') && !s.includes('e') ? s.replace(/\.?0+$/, '') : s;
}

/** Today as YYYY-MM-DD in local time. */
export function isoDate(d = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
