import type { PresenceEventFrame, PresenceUser, StreamPosition } from '@switchboard/protocol';
import type { Switchboard } from './client.js';
import { Emitter } from './emitter.js';
import type { Message, PublishResult, SwitchboardError, TopicMap } from './types.js';

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
    private readonly client: Switchboard<Topics>,
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
