import { reconnectAdvice } from '@switchboard/protocol';
import type { Backoff } from './backoff.js';

/**
 * Zero-delay retries allowed in a row after "reconnect now" closes (moved, restart, drain): a
 * node that keeps sending its clients elsewhere at once must not turn them into a busy loop.
 */
export const IMMEDIATE_RETRY_LIMIT = 3;

/** The retry counters the policy reads and advances; both are reset by a `welcome`. */
export interface ReconnectCounters {
  /** Failed attempts since the last `welcome` (or `connect()`): the backoff's argument. */
  attempt: number;
  /** Zero-delay retries since the last `welcome`, bounded by {@link IMMEDIATE_RETRY_LIMIT}. */
  immediateRetries: number;
}

/** What the reconnect policy knows besides the close code. */
export interface ReconnectContext extends ReconnectCounters {
  /** Whether the token option is a function, i.e. whether a 4001 can be cured by asking again. */
  tokenIsFunction: boolean;
  /** Delay of attempt n; the policy calls it at most once per decision. */
  backoff: Backoff;
}

/** Why the client must not reconnect. */
export type ReconnectStop =
  /** The close code forbids reconnecting (normal close, kicked, policy, too large). */
  | 'final'
  /** A 4001 (token rejected) with a fixed token: retrying would be rejected again. */
  | 'token-not-refreshable';

/** The policy's answer: reconnect after `delayMs` with the new counters, or stop. */
export type ReconnectDecision = ({ delayMs: number; refreshToken: boolean } & ReconnectCounters) | { stop: ReconnectStop };

/**
 * Decides what the client does after its socket closed with `closeCode`, from the protocol's
 * {@link reconnectAdvice}; pure (given a pure `backoff`), so every close code can be table-tested.
 */
export function nextReconnect(closeCode: number, context: ReconnectContext): ReconnectDecision {
  const advice = reconnectAdvice(closeCode);
  if (advice === 'stop') return { stop: 'final' };
  if (advice === 'refresh-token' && !context.tokenIsFunction) return { stop: 'token-not-refreshable' };
  const { attempt, immediateRetries, backoff } = context;
  // The first refresh is immediate: an expired token is routine, not a sign of trouble.
  if (advice === 'refresh-token') return retry(attempt === 0 ? 0 : backoff(attempt), true, attempt + 1, immediateRetries);
  if (advice === 'now' && immediateRetries < IMMEDIATE_RETRY_LIMIT) return retry(0, false, attempt, immediateRetries + 1);
  return retry(backoff(attempt), false, attempt + 1, immediateRetries);
}

/**
 * Decides the retry after the token function threw or rejected: always with backoff (unlike a
 * 4001, whose first refresh is immediate), since a failing token endpoint needs time.
 */
export function nextReconnectAfterTokenFailure({ attempt, immediateRetries, backoff }: ReconnectContext): ReconnectDecision {
  return retry(backoff(attempt), true, attempt + 1, immediateRetries);
}

function retry(delayMs: number, refreshToken: boolean, attempt: number, immediateRetries: number): ReconnectDecision {
  return { delayMs, refreshToken, attempt, immediateRetries };
}
