/**
 * Polling for state that changes asynchronously (a session the server is still releasing, a
 * gateway probe, a presence list, a page in a browser). One helper for every test, so that each
 * waits the same way and fails with the same kind of message.
 *
 * ```ts
 * // A predicate: polled until it returns true.
 * await eventually(() => node.node.sessionCount === 0, { message: 'every session released' });
 * // An assertion: retried until it stops throwing; the value it returns is the result.
 * const res = await eventually(async () => {
 *   const res = await api(node, 'GET', '/v1/users/alice');
 *   assert.equal(res.body.online, false);
 *   return res;
 * }, { message: 'alice offline', timeoutMs: 8000 });
 * ```
 *
 * To know how long it took (as the Redis outage test reports), take `Date.now()` around the call.
 */
import { setTimeout as delay } from 'node:timers/promises';

export interface EventuallyOptions {
  /** How long to keep trying, from the first attempt; 5000 ms unless given. */
  timeoutMs?: number;
  /** The pause between two attempts; 20 ms unless given. */
  intervalMs?: number;
  /** What is awaited, for the failure: "timed out after 5000 ms waiting for <message> (…)". */
  message?: string;
}

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_INTERVAL_MS = 20;

/**
 * Calls `check` until it succeeds and resolves with what it returned. An attempt fails when it
 * throws or rejects (an assertion) or returns exactly `false` (a predicate); any other result,
 * `undefined` included, is success. There is always at least one attempt, and one more at or
 * after the deadline. On timeout it rejects with an Error naming `message`, the time waited and
 * the last failure; a thrown last failure is also the error's `cause`.
 *
 * An attempt that never settles is not cut short: `check` must not hang.
 */
export async function eventually<T>(check: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<Exclude<T, false>> {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, intervalMs = DEFAULT_INTERVAL_MS, message = 'the condition' } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let failure: { error: unknown } | undefined;
    try {
      const value = await check();
      if (value !== false) return value as Exclude<T, false>;
    } catch (error) {
      failure = { error };
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const last = failure === undefined ? 'the check still returned false' : `last error: ${describe(failure.error)}`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${message} (${last})`,
        failure === undefined ? undefined : { cause: failure.error },
      );
    }
    await delay(Math.min(intervalMs, left));
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
