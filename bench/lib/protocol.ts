/**
 * What the runner and its load-generator workers say to each other over the fork IPC channel.
 * Each command carries an `id`; the worker answers it with exactly one `result` of the same id.
 */

/** Which client library and wire format a system speaks. */
export type ClientKind = 'switchboard' | 'raw' | 'socketio';

/** One simulated user: where it connects, who it is, and what it does. */
export interface ClientSpec {
  /** Index across all workers (seeds: the message it sends carries it, to recognise its echo). */
  idx: number;
  /** Base URL of the node, `ws://127.0.0.1:PORT` (socket.io: `http://…`). */
  url: string;
  user: string;
  /** A group / room this client is in, besides its own user and "everyone". */
  group?: string;
  /** Switchboard: may publish to `broadcast`. */
  admin?: boolean;
  /** Source address on loopback (127.0.0.x), so connections spread over many ephemeral port ranges. */
  localAddress: string;
  /** Point-to-point: `sender` sends to `to`; a `receiver` belongs to pair `pair`. */
  role?: 'sender' | 'receiver';
  to?: string;
  pair?: number;
}

/** Settings every connecting command shares. */
export interface ConnectSettings {
  kind: ClientKind;
  /** HS256 secret for Switchboard tokens (minted in the worker, before any timing starts). */
  secret: string;
  /** Switchboard: connect with `?batch=1`, as the SDK does. */
  batch: boolean;
  /** Give up on one connection after this long. */
  timeoutMs: number;
}

export type Command =
  | ({ op: 'connect'; id: number; specs: ClientSpec[]; concurrency: number } & ConnectSettings)
  | { op: 'listen'; id: number; fanout: boolean }
  | { op: 'collect'; id: number }
  | { op: 'send-rate'; id: number; rate: number; durationMs: number; startAtUs: number; random?: string[] }
  | { op: 'send-saturate'; id: number; window: number; durationMs: number }
  | ({ op: 'seeds'; id: number; specs: ClientSpec[]; t0Us: number; stepUs: number } & ConnectSettings)
  | { op: 'close'; id: number };

/** Answer to `connect`. */
export interface ConnectResult {
  ok: number;
  errors: number;
  errorSamples: string[];
  /** Monotonic µs of the first attempt and of the last client becoming usable. */
  firstStartUs: number;
  lastReadyUs: number;
  /** Histogram (compressed base64) of attempt → usable, µs. */
  hist: string;
}

/** Answer to `collect`: what was delivered since the last `listen`/`collect`. */
export interface CollectResult {
  delivered: number;
  hist: string;
  firstDeliveryUs: number;
  lastDeliveryUs: number;
  /** `error` frames the server sent (rate limits and the like). */
  serverErrors: number;
  /** Clients that closed after connecting. */
  drops: number;
  dropSamples: string[];
}

/** Answer to `send-rate` and `send-saturate`. */
export interface SendResult {
  sent: number;
  startUs: number;
  endUs: number;
}

/** Answer to `seeds`. */
export interface SeedsResult {
  ok: number;
  errors: number;
  errorSamples: string[];
  lastDoneUs: number;
  hist: string;
}

/** Messages a worker sends besides results. */
export type WorkerEvent =
  | { type: 'result'; id: number; result?: unknown; error?: string }
  | { type: 'progress'; connected: number; delivered: number; errors: number }
  /** Fan-out: every client of this worker has publication `seq`. */
  | { type: 'seq-done'; seq: number };
