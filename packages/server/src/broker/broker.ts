/** What travels between nodes on a channel. */
export type BrokerMessage =
  /**
   * A publication, already in the channel's history: its position, and its `message` frame as
   * UTF-8 bytes, serialised once by the publishing node, so receiving nodes write it to sockets as is.
   */
  | { kind: 'message'; epoch: string; offset: number; frame: Buffer }
  /** A user's first session joined, or last session left, a channel (cluster-wide). */
  | { kind: 'presence'; channel: string; event: 'join' | 'leave'; user: string; ts: number }
  /** Close every session of `user` with `code` (sent on the user's personal channel). */
  | { kind: 'disconnect'; user: string; code: number; reason: string };

/** The link between this node and the broker's backend. */
export type LinkState = 'down' | 'up';

/**
 * What the broker pushes into the node (the node never polls). None of these may throw; a broker
 * that catches a throw anyway reports it through `error` and keeps delivering.
 */
export interface BrokerHandler {
  /** A message for a channel this node subscribed to. Called in offset order per channel. */
  message(channel: string, message: BrokerMessage): void;
  /** The link went down, or came back with every subscription restored. */
  link(state: LinkState, detail: string): void;
  /** A failure the broker carried on after: an undecodable payload, a failed re-bind. */
  error(err: unknown, what: string): void;
}

/**
 * Moves messages between the nodes of a cluster. Every implementation keeps these promises; one
 * contract suite (`test/contracts/broker-contract.ts`) checks them on each backend, outages included.
 *
 * - **Delivery** is at-most-once between live nodes (memory: exactly once; Redis and NATS: at most
 *   once; RabbitMQ: at-least-once, repeats dropped by the receiver). A message published while a
 *   node's link is down may never reach it: sessions see the hole by offset and fill it from History.
 *   Repeats carry the same (channel, epoch, offset), and sessions drop what they already delivered.
 * - **Order**: per channel, messages arrive in the order `publish` was called on one node. Offsets
 *   come from History; the node publishes a channel's publications in offset order (one append and
 *   publish after the other, or both in one atomic step where one store does both).
 * - **`publish`** resolves once the backend has taken the message (a publisher confirm, a flush, a
 *   reply); it rejects at once while the backend is unreachable and never queues for later.
 * - **`subscribe`** resolves once the node receives the channel; it rejects at once while the
 *   backend is unreachable (the caller retries with the next subscriber). Subscriptions taken are
 *   restored by the broker itself after a lost link; `handler.link('up')` says when.
 * - **`unsubscribe`** never fails for a lost link: the broker makes sure the channel is not
 *   restored when the link is back.
 */
export interface Broker {
  /** Starts delivering to `handler`. Called once, before any subscribe. */
  start(handler: BrokerHandler): Promise<void>;
  /** Receive `channel` on this node. Idempotent; the caller reference-counts. */
  subscribe(channel: string): Promise<void>;
  /** Stop receiving `channel`. Idempotent. */
  unsubscribe(channel: string): Promise<void>;
  /** Sends `message` to every node that receives `channel`. */
  publish(channel: string, message: BrokerMessage): Promise<void>;
  /** True while the broker can accept publishes (used by `/readyz`). */
  readonly ready: boolean;
  /** Stops delivery and releases connections. Idempotent. */
  close(): Promise<void>;
}
