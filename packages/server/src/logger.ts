import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

const REDACT_PATHS = [
  'token',
  'apiKey',
  'jwtSecret',
  'secret',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.token',
  '*.apiKey',
  '*.jwtSecret',
];

/**
 * JSON logger with the node id on every line. Tokens, secrets and API keys are redacted by
 * path; URLs must go through {@link redactUrl} before they are logged.
 */
export function createLogger(nodeId: string, level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { node: nodeId },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** Replaces the value of `token`, `access_token` and `api_key` query parameters with `[REDACTED]`. */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  return url.replace(/([?&](?:token|access_token|api_key|apiKey)=)[^&#]*/gi, '$1[REDACTED]');
}
