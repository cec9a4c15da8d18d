/** What travels between nodes on a channel. */
export type BrokerMessage =
  /**
   * A publication, already in the channel's history: its position, and its `message` frame
   * serialised once by the publishing node, so receiving nodes write it to sockets as is.
   */
  | { kind: 'message'; epoch: string; offset: number; frame: string }
  /** A user's first session joined, or last session left, a channel (cluster-wide). */
  | { kind: 'presence'; channel: string; event: 'join' | 'leave'; user: string; ts: number }
  /** Close every session of `user` with `code` (sent on the user's personal channel). */
  | { kind: 'disconnect'; user: string; code: number; reason: string };

/** Receives what the broker delivers to this node. Called in publish order per channel. */
export type BrokerHandler = (channel: string, message: BrokerMessage) => void;

/**
 * Moves messages between the nodes of a cluster. Per channel, order is kept for one publisher.
 * The memory broker delivers in-process, exactly once, synchronously with `publish`.
 * Implementations say their delivery guarantee in their own TSDoc.
 */
export interface Broker {
  /** Starts delivering to `handler`. Called once, before any subscribe. */
  start(handler: BrokerHandler): Promise<void>;
  /** Receive `channel` on this node. Idempotent; the caller reference-counts. */
  subscribe(channel: string): Promise<void>;
  /** Stop receiving `channel`. Idempotent. */
  unsubscribe(channel: string): Promise<void>;
  /** Sends `message` to every node subscribed to `channel`. Rejects when the broker is unreachable. */
  publish(channel: string, message: BrokerMessage): Promise<void>;
  /** True while the broker can accept publishes (used by `/readyz`). */
  readonly ready: boolean;
  /** Stops delivery and releases connections. Idempotent. */
  close(): Promise<void>;
}
