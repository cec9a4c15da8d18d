import { ServiceUnreachableError } from '../service-unreachable.js';

/** Thrown at start-up when the broker's server does not answer (`AMQP_URL`, `NATS_URL`). */
export class BrokerUnreachableError extends ServiceUnreachableError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BROKER_UNREACHABLE', message, options);
  }
}
