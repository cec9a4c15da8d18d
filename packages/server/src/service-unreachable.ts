/**
 * A service the node needs (Redis, PostgreSQL, the broker) does not answer at start-up. The message
 * names the URL's environment variable and how to fix it, never the URL's password; `code` says
 * which service (`ERR_REDIS_UNREACHABLE`, …). The CLI prints the message and exits 1 for any of them.
 */
export class ServiceUnreachableError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
