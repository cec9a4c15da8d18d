import { parseChannel } from '@switchboard/protocol';
import { HashRing } from './hash-ring.js';

/** Called when the ring changes, with the rings before and after. */
export type RingListener = (before: HashRing, after: HashRing) => void;

/**
 * The node's current view of the hash ring, shared by the components that route by it (the
 * broker's router, with `hash` routing). The node rebuilds it from the
 * registry's live nodes on every change event; nothing reads Redis per message.
 */
export class RingHolder {
  private ring = HashRing.from([]);
  private readonly listeners = new Set<RingListener>();

  /** Replaces the ring when the set of nodes differs; listeners hear of real changes only. */
  set(ring: HashRing): void {
    if (ring.equals(this.ring)) return;
    const before = this.ring;
    this.ring = ring;
    for (const listener of this.listeners) listener(before, ring);
  }

  /** Listens to ring changes; returns an unsubscribe function. */
  onChange(listener: RingListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The owner node of a `user:` channel, or `undefined` for other channels and an empty ring. */
  ownerOf(channel: string): string | undefined {
    const ref = parseChannel(channel);
    return ref?.kind === 'user' ? this.ring.nodeFor(ref.id) : undefined;
  }
}
