import type { ErrorCode } from './codes.js';

/** A client-chosen request id, echoed in the single `reply` to that frame. */
export type FrameId = string | number;

/** A channel position: "I have everything up to `offset` in `epoch`". */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

// ---- client → server -------------------------------------------------------

/** Publish to `user:<to>`. */
export interface SendFrame {
  type: 'send';
  to: string;
  topic: string;
  data?: unknown;
  id?: FrameId;
  /** Idempotency key: a repeat from the same user within the window is not delivered again. */
  key?: string;
  /** Inbox on: tell the sender (a `receipt` frame) when `to` has acked this message. */
  receipt?: boolean;
}

/** Publish to a channel the session may publish to. */
export interface PublishFrame {
  type: 'publish';
  channel: string;
  topic: string;
  data?: unknown;
  id?: FrameId;
  /** Idempotency key: a repeat from the same user within the window is not delivered again. */
  key?: string;
}

/** Subscribe to a channel, optionally recovering from a position. */
export interface SubscribeFrame {
  type: 'subscribe';
  channel: string;
  since?: StreamPosition;
  id?: FrameId;
}

/** Stop receiving a channel. */
export interface UnsubscribeFrame {
  type: 'unsubscribe';
  channel: string;
  id?: FrameId;
}

/** Ask who is in a channel. */
export interface PresenceQueryFrame {
  type: 'presence';
  channel: string;
  id?: FrameId;
}

/** Application-level heartbeat; answered with `pong`. */
export interface PingFrame {
  type: 'ping';
  id?: FrameId;
}

/**
 * Inbox on: "I have handled everything in my own `user:` channel up to `offset` of `epoch`".
 * Cumulative and per user (every session of the user shares it).
 */
export interface AckFrame {
  type: 'ack';
  channel: string;
  epoch: string;
  offset: number;
  id?: FrameId;
}

/** Inbox on: ask for the own inbox's position, acked offset and unacked count (answered in the reply). */
export interface InboxQueryFrame {
  type: 'inbox';
  id?: FrameId;
}

/** Every frame a client may send. */
export type ClientFrame =
  SendFrame | PublishFrame | SubscribeFrame | UnsubscribeFrame | PresenceQueryFrame | PingFrame | AckFrame | InboxQueryFrame;

/** The `type` of a client frame. */
export type ClientFrameType = ClientFrame['type'];

// ---- server → client -------------------------------------------------------

/** Per-channel state in `welcome` and subscribe replies. */
export interface SubscriptionState extends StreamPosition {
  /** Present for channels the client asked to resume. */
  recovered?: boolean;
  /**
   * Inbox on, own `user:` channel only: the user's acked offset in this epoch. A session that did
   * not resume this channel is handed every message after it, before live ones.
   */
  acked?: number;
}

/** First frame of an authenticated session. */
export interface WelcomeFrame {
  type: 'welcome';
  session: string;
  user: string;
  node: string;
  /** Heartbeat interval in seconds. */
  heartbeat: number;
  subscriptions: Record<string, SubscriptionState>;
}

/** A publication delivered to a subscriber. */
export interface MessageFrame {
  type: 'message';
  channel: string;
  epoch: string;
  offset: number;
  /** The sender's user id, set by the server; `null` for anonymous HTTP publishes. */
  from: string | null;
  topic: string;
  data: unknown;
  /** Server time of the publication, ms since the epoch. */
  ts: number;
  /** Inbox on: the sender asked for a read receipt; acking this message sends it one. */
  receipt?: true;
}

/**
 * Inbox on: `user` acked the message at `channel`/`epoch`/`offset` that this session's user sent
 * with `receipt: true`. It is kept in the sender's inbox, at `inbox` (ack it like a message).
 */
export interface ReceiptFrame {
  type: 'receipt';
  channel: string;
  epoch: string;
  offset: number;
  user: string;
  /** When the ack was taken, ms since the epoch. */
  ts: number;
  /** Where the receipt sits in the receiving user's own channel. */
  inbox: { channel: string } & StreamPosition;
}

/** Error details. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

/** Successful reply; extra fields depend on the request. */
export interface OkReplyFrame {
  type: 'reply';
  id: FrameId;
  ok: true;
  [extra: string]: unknown;
}

/** Failed reply. */
export interface ErrorReplyFrame {
  type: 'reply';
  id: FrameId;
  ok: false;
  error: ErrorBody;
}

/** The single answer to a client frame that carried an `id`. */
export type ReplyFrame = OkReplyFrame | ErrorReplyFrame;

/** A user joined or left a group channel. */
export interface PresenceEventFrame {
  type: 'presence';
  channel: string;
  event: 'join' | 'leave';
  user: string;
  ts: number;
}

/** An error not tied to a request id. */
export interface ErrorFrame {
  type: 'error';
  error: ErrorBody;
}

/** Answer to `ping`. */
export interface PongFrame {
  type: 'pong';
}

/** Every frame a server may send. */
export type ServerFrame = WelcomeFrame | MessageFrame | ReceiptFrame | ReplyFrame | PresenceEventFrame | ErrorFrame | PongFrame;

/** One user's presence in a channel. */
export interface PresenceUser {
  user: string;
  sessions: number;
  nodes: string[];
}
