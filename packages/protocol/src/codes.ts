/** Error codes carried in `error` frames, failed `reply` frames and HTTP error bodies. */
export const ERROR_CODES = [
  'unauthorized',
  'forbidden',
  'bad_frame',
  'too_large',
  'rate_limited',
  'not_found',
  'unavailable',
  'internal',
] as const;

/** One of the wire error codes of protocol v1. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** WebSocket close codes used by Switchboard (RFC 6455 codes plus the 4xxx application range). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_LARGE: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  OVERLOADED: 1013,
  MOVED: 4000,
  UNAUTHORIZED: 4001,
  FORBIDDEN: 4003,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
} as const;

/** A close code named by protocol v1. */
export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** How a client should react to a close code. */
export type ReconnectAdvice =
  /** Reconnect at once, no backoff (moved, restart, drain). */
  | 'now'
  /** Reconnect with backoff (network fault, overload, internal error, slow consumer, rate limit). */
  | 'backoff'
  /** Get a new token first; never retry blindly with the same one. */
  | 'refresh-token'
  /** Do not reconnect (normal close, kicked, policy). */
  | 'stop';

/**
 * The one place that decides whether a client may reconnect after a close code.
 * Clients must not decide this at each call site.
 */
export function reconnectAdvice(code: number): ReconnectAdvice {
  switch (code) {
    case CloseCode.MOVED:
    case CloseCode.RESTART:
    case CloseCode.GOING_AWAY:
      return 'now';
    case CloseCode.UNAUTHORIZED:
      return 'refresh-token';
    case CloseCode.NORMAL:
    case CloseCode.FORBIDDEN:
    case CloseCode.POLICY:
    case CloseCode.TOO_LARGE:
      return 'stop';
    default:
      return 'backoff';
  }
}
