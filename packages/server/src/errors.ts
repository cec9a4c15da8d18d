import type { ErrorCode } from '@switchboard/protocol';

/** One entry of the error catalog: the wire code, the HTTP status and what it means. */
export interface ErrorSpec {
  code: ErrorCode;
  status: number;
  description: string;
}

/**
 * The server's error catalog. Every error a client can see comes from here; docs/errors.md lists
 * exactly these entries (a test checks it).
 */
export const ERRORS = {
  ERR_UNAUTHORIZED: {
    code: 'unauthorized',
    status: 401,
    description: 'Missing, malformed, wrongly signed or expired token, or a missing or wrong API key.',
  },
  ERR_FORBIDDEN: {
    code: 'forbidden',
    status: 403,
    description:
      "The token does not allow this channel: not a member of the group, not admin for `broadcast`, or not in the token's `channels`.",
  },
  ERR_BAD_FRAME: {
    code: 'bad_frame',
    status: 400,
    description:
      'Not a JSON object, an unknown `type`, a missing or mistyped field, an invalid channel name, `data` nested deeper than 128 levels, or a binary frame.',
  },
  ERR_TOO_LARGE: {
    code: 'too_large',
    status: 413,
    description: 'A body over `maxPayloadBytes`, or a session already at `maxSubscriptions`.',
  },
  ERR_RATE_LIMITED: {
    code: 'rate_limited',
    status: 429,
    description:
      'The session sent frames faster than `rateLimitPerSecond` allows; the frame was dropped. Over HTTP: the address sent `/v1` requests faster than `httpRateLimitPerSecond`, or failed authentication more than `httpAuthFailuresBurst` times; `Retry-After` says when to retry.',
  },
  ERR_UPGRADE_REQUIRED: {
    code: 'bad_frame',
    status: 426,
    description: 'A plain HTTP request to the WebSocket endpoint: it needs an `Upgrade: websocket` request.',
  },
  ERR_NOT_FOUND: { code: 'not_found', status: 404, description: 'No such route, or unsubscribing from a channel the session is not in.' },
  ERR_UNAVAILABLE: {
    code: 'unavailable',
    status: 503,
    description: 'The engine (history, broker or presence) is unreachable, or the node is draining. Nothing was published.',
  },
  ERR_INTERNAL: { code: 'internal', status: 500, description: 'A bug: the failure is logged with the node id.' },
} as const satisfies Record<string, ErrorSpec>;

/** A catalog key. */
export type ErrorName = keyof typeof ERRORS;

/** An error with a catalog entry: it knows its wire code and HTTP status. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(
    readonly errorName: ErrorName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SwitchboardError';
    this.code = ERRORS[errorName].code;
    this.status = ERRORS[errorName].status;
  }
}

/** The `{code, message}` body for any thrown value; unknown errors become `internal`. */
export function errorBody(err: unknown): { code: ErrorCode; message: string } {
  if (err instanceof SwitchboardError) return { code: err.code, message: err.message };
  return { code: 'internal', message: 'internal error' };
}
