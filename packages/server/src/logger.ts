import { pino, type DestinationStream, type Logger } from 'pino';
import { SECRET_OPTIONS } from './options.js';

export type { Logger } from 'pino';

/** Fields that hold secrets wherever they appear in a log line: the secret options, and request credentials. */
const SECRET_FIELDS = [...SECRET_OPTIONS, 'token', 'secret', 'password'];
const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
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

/** Replaces the value of `token`, `access_token`, `api_key` and `apiKey` query parameters with `[REDACTED]`. */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  return url.replace(/([?&](?:token|access_token|api_key|apiKey)=)[^&#]*/gi, '$1[REDACTED]');
}
