import {
  encodeResume,
  type MessageFrame,
  type PresenceUser,
  type ReceiptFrame,
  type StreamPosition,
  type SubscriptionState,
  type WelcomeFrame,
} from '@switchboard/protocol';
import { Connection, type SessionFrame } from './connection.js';
import { Emitter, type Listener } from './emitter.js';
import { resolveOptions, type ClientOptions, type ResolvedOptions } from './options.js';
import { RequestTable } from './requests.js';
import { Subscription, type SubscriptionHost } from './subscription.js';
import type { ClientEvents, ClientState, InboxState, Message, PublishResult, SendOptions, SwitchboardError, TopicMap } from './types.js';

/**
 * A Switchboard connection that survives the network: it reconnects with backoff, resumes every
 * channel from the last position the app saw (each message reaches the app once, in order per
 * channel), queues sends while offline and resends them safely with idempotency keys.
 */
export class Switchboard<Topics extends TopicMap = TopicMap> implements SubscriptionHost<Topics> {
  /** Lifecycle events: `state`, `connecting`, `connected`, `disconnected`, `closed`, `message`, … */
  readonly events = new Emitter<ClientEvents>();
  private readonly options: ResolvedOptions;
  private readonly connection: Connection;
  private readonly requests: RequestTable;
  /** The listeners of `on(topic)`, by topic. */
  private readonly topics = new Emitter<Record<string, Message>>();
  private readonly channels = new Map<string, Subscription<Topics>>();
  /** Channels the app subscribed to explicitly (beyond the token's automatic ones). */
  private readonly explicit = new Set<string>();
  private readonly positions: Record<string, StreamPosition>;
  /** A save of `positions` is due at the end of this task. */
  private saveQueued = false;
  /** The user's own channel while the server has the inbox on (its welcome carries `acked`). */
  private inboxChannel: string | undefined;
  /** The last position of the own channel acked (or known acked), and whether an ack is due. */
  private ackedAt: StreamPosition | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(url: string, options: ClientOptions) {
    this.options = resolveOptions(options);
    this.positions = this.options.positions.load();
    this.connection = new Connection(url, this.options.WebSocket, this.options, this.events, {
      resumeQuery: () => (Object.keys(this.positions).length > 0 ? `&resume=${encodeResume(this.positions)}` : ''),
      welcome: (welcome) => this.onWelcome(welcome),
      connected: () => this.onConnected(),
      frame: (frame) => this.onFrame(frame),
      lost: () => this.requests.lost(),
      closing: (message) => this.requests.close(message),
    });
    this.requests = new RequestTable(this.connection, { maxQueue: this.options.maxQueue, timeoutMs: this.options.requestTimeoutMs });
    // Deferred a microtask so that listeners added right after `new` see the first transitions.
    if (this.options.autoConnect) queueMicrotask(() => this.connect());
  }

  /** The connection state. */
  get state(): ClientState {
    return this.connection.state;
  }

  /** The current session's `welcome` (user, node, session id), once connected. */
  get session(): WelcomeFrame | undefined {
    return this.connection.session;
  }

  /** The last position the app saw on `channel`. */
  position(channel: string): StreamPosition | undefined {
    const p = this.positions[channel];
    return p ? { ...p } : undefined;
  }

  /**
   * Opens the connection (again, after `disconnect()`).
   *
   * In a browser (where `globalThis` has `addEventListener`), the client also follows the
   * network: on the `offline` event it drops the socket at once, emits `disconnected` with
   * `reconnectInMs: null` and makes no attempt while `navigator.onLine` is false; on `online` it
   * reconnects right away and resumes. Sends made meanwhile wait in the offline queue.
   */
  connect(): void {
    this.connection.connect();
  }

  /** Closes the connection for good (after sending an ack that was due); queued sends are rejected with `closed`. */
  disconnect(): void {
    if (this.ackTimer !== undefined) {
      clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      this.sendAck();
    }
    this.connection.close();
  }

  /** Calls `listener` for every message with `topic`, on any channel: `client.on('chat', m => …)`. */
  on<K extends keyof Topics & string>(topic: K, listener: (message: Message<Topics[K], K>) => void): () => void {
    return this.topics.on(topic, listener as Listener<Message>);
  }

  /** The subscription object of `channel` (created once per channel). */
  channel(channel: string): Subscription<Topics> {
    let sub = this.channels.get(channel);
    if (!sub) this.channels.set(channel, (sub = new Subscription<Topics>(this, channel)));
    return sub;
  }

  /**
   * Sends to every session of user `to`. Resolves with the message's position once accepted.
   * With `{ receipt: true }` (inbox on), a `receipt` event follows once `to` has acked it.
   */
  send<K extends keyof Topics & string>(to: string, topic: K, data: Topics[K], options: SendOptions = {}): Promise<PublishResult> {
    return this.publishFrame(options.receipt ? { type: 'send', to, topic, data, receipt: true } : { type: 'send', to, topic, data });
  }

  /**
   * Acks the own channel (inbox on) up to `message`, or up to everything seen so far: "handled",
   * for every session of this user; a new device then starts after it. Needed only with
   * `acks: 'manual'`. Resolves once the server has stored it.
   */
  async ack(message?: { channel: string; epoch: string; offset: number }): Promise<void> {
    const channel = this.inboxChannel;
    if (!channel) throw new Error('no inbox: the server does not have the inbox on (or the client is not connected yet)');
    const upTo = message && message.channel === channel ? { epoch: message.epoch, offset: message.offset } : this.positions[channel];
    if (!upTo) return;
    await this.requests.request({ type: 'ack', channel, epoch: upTo.epoch, offset: upTo.offset }, false);
    if (!this.ackedAt || this.ackedAt.epoch !== upTo.epoch || this.ackedAt.offset < upTo.offset) this.ackedAt = { ...upTo };
  }

  /** The own inbox (inbox on): its position, the acked offset and how many messages are unacked. */
  async inbox(): Promise<InboxState> {
    const reply = await this.requests.request({ type: 'inbox' }, false);
    return {
      channel: reply.channel as string,
      epoch: reply.epoch as string,
      offset: reply.offset as number,
      acked: reply.acked as number,
      unacked: reply.unacked as number,
    };
  }

  /** Publishes to a channel. Resolves with the message's position once accepted. */
  publish<K extends keyof Topics & string>(channel: string, topic: K, data: Topics[K]): Promise<PublishResult> {
    return this.publishFrame({ type: 'publish', channel, topic, data });
  }

  private async publishFrame(frame: Record<string, unknown>): Promise<PublishResult> {
    const reply = await this.requests.request(frame, true);
    const result: PublishResult = { epoch: reply.epoch as string, offset: reply.offset as number };
    if (reply.duplicate === true) result.duplicate = true;
    return result;
  }

  /** @internal Subscribes `channel` beyond the automatic ones; kept across reconnects. */
  async subscribeChannel(channel: string): Promise<void> {
    this.explicit.add(channel);
    if (this.inSession(channel)) return;
    const since = this.positions[channel];
    const reply = await this.requests.request({ type: 'subscribe', channel, ...(since ? { since } : {}) }, false);
    this.track(channel, reply.epoch as string, reply.offset as number, reply.recovered as boolean | undefined);
  }

  /** @internal Stops receiving `channel` and forgets its position. */
  async unsubscribeChannel(channel: string): Promise<void> {
    this.explicit.delete(channel);
    delete this.positions[channel];
    this.savePositions();
    if (this.state === 'connected') await this.requests.request({ type: 'unsubscribe', channel }, false);
  }

  /** @internal Who is in `channel` now. */
  async presenceOf(channel: string): Promise<PresenceUser[]> {
    const reply = await this.requests.request({ type: 'presence', channel }, false);
    return reply.users as PresenceUser[];
  }

  private onFrame(frame: SessionFrame): void {
    switch (frame.type) {
      case 'message':
        return this.onMessage(frame);
      case 'receipt':
        return this.onReceipt(frame);
      case 'reply':
        return this.requests.settle(frame);
      case 'presence':
        this.events.emit('presence', frame);
        this.channels.get(frame.channel)?.emitPresence(frame);
        return;
      case 'error':
        this.events.emit('error', frame.error);
        return;
      default: {
        const never: never = frame;
        void never;
      }
    }
  }

  /** Takes the session's channel positions; runs before `connected`, so its `recovery-failed` events come first. */
  private onWelcome(welcome: WelcomeFrame): void {
    const own = `user:${welcome.user}`;
    const inbox = welcome.subscriptions[own]?.acked !== undefined ? own : undefined;
    this.inboxChannel = inbox;
    for (const [channel, state] of Object.entries(welcome.subscriptions)) {
      if (channel === inbox) this.trackInbox(channel, state);
      else this.track(channel, state.epoch, state.offset, state.recovered);
    }
  }

  /**
   * The own channel with the inbox on. Without a position of ours, the server hands us everything
   * after `acked` next, so that is where we stand.
   */
  private trackInbox(channel: string, state: SubscriptionState): void {
    const acked = state.acked!;
    this.ackedAt = { epoch: state.epoch, offset: acked };
    if (state.recovered === undefined) {
      this.positions[channel] = { epoch: state.epoch, offset: acked };
      this.savePositions();
      return;
    }
    this.track(channel, state.epoch, state.offset, state.recovered);
  }

  /** Subscribes again what the session lacks, then writes the offline queue (after those subscribes). */
  private onConnected(): void {
    if (this.options.acks === 'auto') this.scheduleAck(); // what was handled while the link was down
    for (const channel of this.explicit) {
      if (!this.inSession(channel)) this.subscribeChannel(channel).catch((err: SwitchboardError) => this.channel(channel).emitError(err));
    }
    this.requests.flush();
  }

  /** Records where `channel` stands after a welcome or subscribe reply. */
  private track(channel: string, epoch: string, offset: number, recovered: boolean | undefined): void {
    const known = this.positions[channel];
    if (recovered === false) this.recoveryFailed(channel, epoch, offset);
    // When recovered, the replay follows and moves the position; otherwise start from the latest.
    if (recovered !== true || !known || known.epoch !== epoch) this.positions[channel] = { epoch, offset };
    this.savePositions();
  }

  private onMessage(frame: MessageFrame): void {
    if (!this.advance(frame.channel, frame.epoch, frame.offset)) return; // seen already
    const { type: _type, ...message } = frame;
    this.channels.get(frame.channel)?.emitMessage(message);
    // The emitter isolates a throwing listener: the others, and the rest of a batched frame, still
    // get their messages (else those would be lost, their offsets already recorded).
    this.topics.emit(frame.topic, message);
    this.events.emit('message', message);
    if (frame.channel === this.inboxChannel && this.options.acks === 'auto') this.scheduleAck();
  }

  /** A receipt, kept at `frame.inbox` in the own channel: seen once, like a message there. */
  private onReceipt(frame: ReceiptFrame): void {
    const at = frame.inbox;
    if (!this.advance(at.channel, at.epoch, at.offset)) return;
    const { type: _type, ...receipt } = frame;
    this.events.emit('receipt', receipt);
    if (at.channel === this.inboxChannel && this.options.acks === 'auto') this.scheduleAck();
  }

  /**
   * Saves the positions once the current task's frames are handled: a batched frame moves many of
   * them, and a Web Storage write serialises them all, synchronously, each time.
   */
  private savePositions(): void {
    if (this.saveQueued) return;
    this.saveQueued = true;
    queueMicrotask(() => {
      this.saveQueued = false;
      this.options.positions.save(this.positions);
    });
  }

  /** Tells the app that `channel` goes on from `epoch`:`offset` and what came before may be missing. */
  private recoveryFailed(channel: string, epoch: string, offset: number): void {
    const detail = { channel, epoch, offset };
    this.events.emit('recovery-failed', detail);
    this.channels.get(channel)?.emitRecoveryFailed(detail);
  }

  /**
   * Records that the app is handed `offset` of `channel`; false when it was handed already. A
   * live message of another epoch means the channel's history was lost (Redis restarted empty,
   * say): what the old epoch had after our position may never come, so the app is told, as for
   * a resume that could not be filled, before it gets the message.
   */
  private advance(channel: string, epoch: string, offset: number): boolean {
    const known = this.positions[channel];
    if (known && known.epoch === epoch && offset <= known.offset) return false;
    if (known && known.epoch !== epoch) this.recoveryFailed(channel, epoch, offset - 1);
    this.positions[channel] = { epoch, offset };
    this.savePositions();
    return true;
  }

  /** Acks the own channel up to where the app is, within `ackDelayMs`, once per burst. */
  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.sendAck();
    }, this.options.ackDelayMs);
  }

  /** Acks the own channel up to where the app is, unless that is acked already. */
  private sendAck(): void {
    const channel = this.inboxChannel;
    const at = channel ? this.positions[channel] : undefined;
    if (!channel || !at || this.state !== 'connected') return; // sent after the next welcome instead
    const acked = this.ackedAt;
    if (acked && acked.epoch === at.epoch && acked.offset >= at.offset) return;
    this.ackedAt = { ...at };
    // No id: nothing to wait for; a refusal comes back as an `error` event.
    this.connection.send(JSON.stringify({ type: 'ack', channel, epoch: at.epoch, offset: at.offset }));
  }

  private inSession(channel: string): boolean {
    const welcome = this.connection.session;
    return welcome !== undefined && this.state === 'connected' && Object.hasOwn(welcome.subscriptions, channel);
  }
}
