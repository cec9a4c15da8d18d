import type { PresenceEventFrame, PresenceUser, StreamPosition } from '@switchboard/protocol';
import { Emitter } from './emitter.js';
import type { Message, PublishResult, SwitchboardError, TopicMap } from './types.js';

/**
 * What a subscription needs of its client; the client implements it, and depending on this
 * instead of the client class keeps the two modules from importing each other.
 */
export interface SubscriptionHost<Topics extends TopicMap = TopicMap> {
  /** Subscribes `channel` beyond the automatic ones; kept across reconnects. */
  subscribeChannel(channel: string): Promise<void>;
  /** Stops receiving `channel` and forgets its position. */
  unsubscribeChannel(channel: string): Promise<void>;
  /** Who is in `channel` now. */
  presenceOf(channel: string): Promise<PresenceUser[]>;
  /** Publishes to a channel. */
  publish<K extends keyof Topics & string>(channel: string, topic: K, data: Topics[K]): Promise<PublishResult>;
}

/** Events of one channel. */
export interface SubscriptionEvents {
  message: Message;
  join: PresenceEventFrame;
  leave: PresenceEventFrame;
  'recovery-failed': { channel: string } & StreamPosition;
  error: SwitchboardError;
}

/**
 * One channel over a client's connection. The token's channels (own user channel, `broadcast`,
 * groups) deliver without `subscribe()`; other channels need it, and stay subscribed across
 * reconnects until `unsubscribe()`.
 */
export class Subscription<Topics extends TopicMap = TopicMap> {
  private readonly emitter = new Emitter<SubscriptionEvents>();

  constructor(
    private readonly client: SubscriptionHost<Topics>,
    readonly channel: string,
  ) {}

  /** Listens to this channel's messages, presence events, recovery failures or errors. */
  on<K extends keyof SubscriptionEvents>(event: K, listener: (payload: SubscriptionEvents[K]) => void): () => void {
    return this.emitter.on(event, listener);
  }

  /** Subscribes (recovering from the last known position); resolves when the server agreed. */
  subscribe(): Promise<void> {
    return this.client.subscribeChannel(this.channel);
  }

  /** Stops receiving this channel and forgets its position. */
  unsubscribe(): Promise<void> {
    return this.client.unsubscribeChannel(this.channel);
  }

  /** Who is in the channel now: one entry per user, with session counts and nodes. */
  presence(): Promise<PresenceUser[]> {
    return this.client.presenceOf(this.channel);
  }

  /** Publishes to this channel. */
  publish<K extends keyof Topics & string>(topic: K, data: Topics[K]): Promise<PublishResult> {
    return this.client.publish(this.channel, topic, data);
  }

  /** @internal */
  emitMessage(message: Message): void {
    this.emitter.emit('message', message);
  }

  /** @internal */
  emitPresence(frame: PresenceEventFrame): void {
    this.emitter.emit(frame.event, frame);
  }

  /** @internal */
  emitRecoveryFailed(detail: { channel: string } & StreamPosition): void {
    this.emitter.emit('recovery-failed', detail);
  }

  /** @internal */
  emitError(err: SwitchboardError): void {
    this.emitter.emit('error', err);
  }
}
