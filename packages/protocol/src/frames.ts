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

/** Every frame a client may send. */
export type ClientFrame = SendFrame | PublishFrame | SubscribeFrame | UnsubscribeFrame | PresenceQueryFrame | PingFrame;

/** The `type` of a client frame. */
export type ClientFrameType = ClientFrame['type'];

// ---- server → client -------------------------------------------------------

/** Per-channel state in `welcome` and subscribe replies. */
export interface SubscriptionState extends StreamPosition {
  /** Present for channels the client asked to resume. */
  recovered?: boolean;
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
export type ServerFrame = WelcomeFrame | MessageFrame | ReplyFrame | PresenceEventFrame | ErrorFrame | PongFrame;

/** One user's presence in a channel. */
export interface PresenceUser {
  user: string;
  sessions: number;
  nodes: string[];
}
