import type { Broker } from '../broker/broker.js';
import { SwitchboardError } from '../errors.js';
import type { AppendOnceResult, History } from '../history/history.js';
import { messageFrame, type Publication, type PublicationInput } from '../publication.js';

/**
 * How a publication leaves a node: appended to its channel's history (which gives it its offset),
 * then handed to the broker. Resolves once both are done — the store's reply and the broker's
 * confirm — so a sender's `reply` or HTTP 200 means the message is kept and on its way. The path
 * takes a publication before `publish` first awaits, so publications called one after the other
 * get a channel's offsets in call order without waiting for each other's answers.
 */
export interface PublicationPath {
  /**
   * Appends and publishes; with an idempotency `key`, a repeat within the window is neither
   * appended nor published again and answers the original position.
   * @throws PublishFailure (`unavailable`) when the store or the broker is unreachable (the
   * message says which, and whether the publication was kept).
   */
  publish(channel: string, input: PublicationInput, key?: string): Promise<AppendOnceResult>;
}

/** A publication that could not be kept or sent: `stage` says which part failed (for logs and metrics). */
export class PublishFailure extends SwitchboardError {
  constructor(
    readonly stage: 'history' | 'broker',
    message: string,
    cause: unknown,
  ) {
    super('ERR_UNAVAILABLE', message, { cause });
  }
}

/** The general path, for any history and any broker: append, then publish. */
export class AppendThenPublish implements PublicationPath {
  constructor(
    private readonly history: History,
    private readonly broker: Broker,
  ) {}

  async publish(channel: string, input: PublicationInput, key?: string): Promise<AppendOnceResult> {
    // Checked first, so that while the broker is known to be away nothing goes into history either.
    if (!this.broker.ready) throw new PublishFailure('broker', 'broker unavailable: nothing was published', undefined);
    let pub: Publication;
    try {
      if (key === undefined) {
        pub = await this.history.append(channel, input);
      } else {
        const result = await this.history.appendOnce(channel, input, key);
        if (result.duplicate) return result;
        pub = result.pub;
      }
    } catch (err) {
      throw new PublishFailure('history', 'history unavailable: nothing was published', err);
    }
    try {
      await this.broker.publish(channel, { kind: 'message', epoch: pub.epoch, offset: pub.offset, frame: Buffer.from(messageFrame(pub)) });
    } catch (err) {
      throw new PublishFailure('broker', 'broker unavailable: the message is in history but was not delivered live', err);
    }
    return { duplicate: false, pub };
  }
}

/** A store that appends a publication and publishes it in one atomic step (the Redis append script). */
export interface AppendPublishStore {
  /**
   * Appends like `History.appendOnce` (or `append` without `key`) and, in the same step, publishes
   * the encoded message to each of the transport's names in `to`.
   */
  appendAndPublish(channel: string, input: PublicationInput, key: string | undefined, to: readonly string[]): Promise<AppendOnceResult>;
}

/**
 * The path where history and broker live in one store: one round trip appends and publishes
 * (a failure means neither happened). `addresses` names where a channel's publications go, in the
 * transport's terms, from the one routing (`Router.destinations` mapped by `RedisTransport.address`).
 */
export class AtomicAppendPublish implements PublicationPath {
  constructor(
    private readonly store: AppendPublishStore,
    private readonly addresses: (channel: string) => string[],
  ) {}

  async publish(channel: string, input: PublicationInput, key?: string): Promise<AppendOnceResult> {
    try {
      return await this.store.appendAndPublish(channel, input, key, this.addresses(channel));
    } catch (err) {
      throw new PublishFailure('history', 'history unavailable: nothing was published', err);
    }
  }
}
