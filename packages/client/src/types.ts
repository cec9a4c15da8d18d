import type { MessageFrame, PresenceEventFrame, ReceiptFrame, StreamPosition, WelcomeFrame } from '@switchboard/protocol';

/**
 * An event handler property. Declared through a method so that its parameter is checked
 * bivariantly: `ws` and the DOM type their handlers with richer event classes (`MessageEvent`),
 * which a plain function type would refuse.
 */
type Handler<E> = { bivarianceHack(ev: E): void }['bivarianceHack'];

/** The subset of the WebSocket API the client uses: the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<never> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<never> | null;
  /** `ws` only: drop the connection without a closing handshake. */
  terminate?: () => void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `ws`'s default export in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Topic → payload type map for typed `send`, `publish` and `on`. */
export type TopicMap = Record<string, unknown>;

/** A message as the app receives it. */
export type Message<T = unknown, Topic extends string = string> = Omit<MessageFrame, 'data' | 'topic' | 'type'> & {
  topic: Topic;
  data: T;
};

/** Where the client is in its life. */
export type ClientState =
  /** Not connected; a reconnect may be scheduled. */
  | 'disconnected'
  /** Opening a socket or waiting for `welcome`. */
  | 'connecting'
  /** `welcome` received: frames flow. */
  | 'connected'
  /** Stopped by `disconnect()` or by a close code that forbids reconnecting. */
  | 'closed';

/** Events of the client, with their payloads. */
export interface ClientEvents {
  state: { state: ClientState; previous: ClientState };
  connecting: { attempt: number };
  connected: WelcomeFrame;
  /**
   * The socket is gone. `reconnectInMs` is the delay of the next attempt, or null when none is
   * scheduled: the client is closing for good (`closed` follows), or the browser is offline and
   * the client waits for its `online` event.
   */
  disconnected: { code: number; reason: string; reconnectInMs: number | null };
  closed: { code: number; reason: string };
  message: Message;
  /**
   * Inbox on: `user` has acked a message this user sent with `receipt: true` (`channel`, `epoch`,
   * `offset` are that message's). Once per message, also after being offline meanwhile.
   */
  receipt: Receipt;
  presence: PresenceEventFrame;
  'recovery-failed': { channel: string } & StreamPosition;
  /** An `error` frame from the server (a protocol `ErrorCode`), or the client's own `token` error. */
  error: { code: string; message: string };
}

/** A read receipt as the app receives it. */
export type Receipt = Omit<ReceiptFrame, 'type'>;

/** The own inbox, from `client.inbox()`. */
export interface InboxState extends StreamPosition {
  channel: string;
  /** Everything up to this offset is acked (by any of the user's sessions). */
  acked: number;
  /** Messages after `acked`. */
  unacked: number;
}

/** Options of `send`. */
export interface SendOptions {
  /** Inbox on: get a `receipt` event once `to` has acked the message. */
  receipt?: boolean;
}

/** Result of an accepted `send` or `publish`. */
export interface PublishResult extends StreamPosition {
  /** True when the server had already accepted this idempotency key (a retried send). */
  duplicate?: boolean;
}

/** The error codes the client raises itself, next to the protocol's wire `ErrorCode`s. */
export type ClientErrorCode =
  /** A request got no reply within `requestTimeoutMs` while connected. */
  | 'timeout'
  /** The connection was lost before the reply of a request that is unsafe to resend (subscribe, presence…). */
  | 'disconnected'
  /** The offline queue already holds `maxQueue` sends. */
  | 'queue_full'
  /** The client is closed: by `disconnect()`, or by a close code that forbids reconnecting. */
  | 'closed'
  /** The token function threw or rejected (an `error` event, not a rejection); the client retries with backoff. */
  | 'token';

/** A failed request: `code` is a protocol `ErrorCode` or a {@link ClientErrorCode}. */
export class SwitchboardError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SwitchboardError';
  }
}
