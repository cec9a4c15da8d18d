/**
 * Thrown at start-up when the broker's server does not answer. The message names the URL's
 * environment variable (`AMQP_URL`, `NATS_URL`) and how to fix it, never the URL's password; the
 * CLI recognises it by `code`.
 */
export class BrokerUnreachableError extends Error {
  readonly code = 'ERR_BROKER_UNREACHABLE';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerUnreachableError';
  }
}
