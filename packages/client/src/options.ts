import { fullJitter, type Backoff } from './backoff.js';
import { MemoryPositionStore, type PositionStore } from './position-store.js';
import type { WebSocketConstructor } from './types.js';

/** Options of the `Switchboard` client. */
export interface ClientOptions {
  /** The JWT, or a function returning one; a function is called again after a 4001 close (refresh). */
  token: string | (() => string | Promise<string>);
  /** WebSocket constructor. @default globalThis.WebSocket (pass `ws`'s export on Node 20) */
  WebSocket?: WebSocketConstructor;
  /** Delay before reconnect attempt n. @default fullJitter({ baseMs: 500, maxMs: 30_000 }) */
  backoff?: Backoff;
  /** Where per-channel positions are kept between connections (and page loads). @default memory */
  positions?: PositionStore;
  /** Sends and publishes waiting for a connection; one more is rejected with `queue_full`. @default 1000 */
  maxQueue?: number;
  /** A request without a reply for this long, while connected, is rejected with `timeout`. @default 10_000 */
  requestTimeoutMs?: number;
  /**
   * A connection attempt without `welcome` for this long is abandoned and retried with backoff: a
   * network that swallows packets would otherwise leave it opening forever (the heartbeat only
   * starts with `welcome`). @default 10_000
   */
  connectTimeoutMs?: number;
  /**
   * Before each connect, ask the server (`GET /v1/route` with this client's token) which node owns
   * this user on the hash ring, and connect to it directly — the seeds' two-step connect, for
   * clusters with `hash` routing and nodes reachable by their public URLs. @default false
   */
  directConnect?: boolean;
  /** Connect right away (in a microtask, so listeners added after `new` see every event). @default true */
  autoConnect?: boolean;
  /**
   * On a server with the inbox on: `auto` acks the messages (and receipts) of the user's own
   * channel once the app's listeners for them have returned, a few at a time (`ackDelayMs`);
   * `manual` leaves it to `client.ack()`. @default 'auto'
   */
  acks?: 'auto' | 'manual';
  /** With `acks: 'auto'`: the most time an ack waits, so that a burst of messages is acked at once. @default 50 */
  ackDelayMs?: number;
}

/** {@link ClientOptions} with every default filled in. */
export type ResolvedOptions = Required<Omit<ClientOptions, 'token'>> & Pick<ClientOptions, 'token'>;

/** Fills in the defaults; throws when no WebSocket constructor is given or global. */
export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WS) throw new Error('no WebSocket constructor: pass { WebSocket } (e.g. the ws package) on Node 20');
  return {
    token: options.token,
    WebSocket: WS,
    backoff: options.backoff ?? fullJitter(),
    positions: options.positions ?? new MemoryPositionStore(),
    maxQueue: options.maxQueue ?? 1000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    directConnect: options.directConnect ?? false,
    autoConnect: options.autoConnect ?? true,
    acks: options.acks ?? 'auto',
    ackDelayMs: options.ackDelayMs ?? 50,
  };
}
