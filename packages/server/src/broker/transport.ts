import type { LinkState } from './broker.js';

/**
 * Where bytes go between nodes, decided by the routing (`routing.ts`), never by a transport:
 * every node bound to a channel (interest), one node's own address (hash), or every node (broadcast).
 */
export type Destination =
  { readonly kind: 'channel'; readonly channel: string } | { readonly kind: 'node'; readonly node: string } | { readonly kind: 'all' };

/** What a transport pushes into its broker. None of these may throw. */
export interface TransportHandler {
  /**
   * Bytes that arrived for one of this node's bindings. Called synchronously, one payload at a time;
   * a transport with acknowledgements acknowledges once this returns (the payload has been handed
   * to every local session by then).
   */
  bytes(payload: Buffer): void;
  /** The link went down, or came back with every binding restored. */
  link(state: LinkState, detail: string): void;
  /** A background failure the transport carried on after (a failed re-bind, say). */
  error(err: unknown, what: string): void;
}

/**
 * Moves bytes between the nodes of a cluster: the only part of a broker that knows its backend.
 * Codec and routing live above it (`ClusterBroker`), so a new backend is this interface and nothing
 * else. The promises are the {@link Broker}'s, at the level of bytes:
 *
 * - `bind` resolves once what is sent to `to` reaches this node; it rejects at once while the
 *   backend is unreachable. Bindings are restored by the transport after a lost link.
 * - `unbind` never fails for a lost link; the binding is not restored afterwards.
 * - `send` resolves once the backend has taken the bytes for every destination (a confirm, a flush,
 *   a reply) and rejects at once while it is unreachable. A node bound to several destinations of
 *   one `send` may receive the payload more than once.
 * - Bytes sent by one node to one destination arrive in send order.
 */
export interface Transport {
  /** The backend's name, for logs (`redis`, `rabbitmq`, `nats`, `memory`). */
  readonly name: string;
  /** Starts delivering to `handler`. Called once, before any `bind`. */
  start(handler: TransportHandler): Promise<void>;
  /** Receive what is sent to `to`. Idempotent. */
  bind(to: Destination): Promise<void>;
  /** Stop receiving what is sent to `to`. Idempotent. */
  unbind(to: Destination): Promise<void>;
  /** Sends `payload` to every destination of `to`. */
  send(to: readonly Destination[], payload: Buffer): Promise<void>;
  /** True while the backend can take sends. */
  readonly ready: boolean;
  /** Stops delivery, drops this node's bindings, releases what the transport opened. Idempotent. */
  close(): Promise<void>;
}

/**
 * A stable string for a destination (map keys, logs). A channel is its own name (no string made
 * per subscription); the others cannot collide with one, as channel names are only `user:…`,
 * `group:…` and `broadcast`.
 */
export function destinationKey(to: Destination): string {
  switch (to.kind) {
    case 'channel':
      return to.channel;
    case 'node':
      return `node:${to.node}`;
    case 'all':
      return '*';
  }
}
