/** Milliseconds to wait before reconnect attempt `attempt` (0 for the first retry). */
export type Backoff = (attempt: number) => number;

/** Options of {@link fullJitter}. */
export interface FullJitterOptions {
  /** Delay cap of the first retry. @default 500 */
  baseMs?: number;
  /** Largest delay. @default 30_000 */
  maxMs?: number;
  /** Random source in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * Exponential backoff with full jitter: a uniform delay in [0, min(maxMs, baseMs·2^attempt)).
 * Spreading retries over the whole window keeps a fleet of clients from reconnecting in step
 * after a node restarts.
 */
export function fullJitter(options: FullJitterOptions = {}): Backoff {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const random = options.random ?? Math.random;
  return (attempt) => Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 30)));
}
