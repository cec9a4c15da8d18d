import { DEFAULT_VNODES, HashRing } from './hash-ring.js';
import type { NodeInfo } from './registry.js';

/** Where a user should connect: the owner node on the ring and its public URL. */
export interface Route {
  node: string;
  url: string;
}

/**
 * The cluster's hash ring kept next to the live nodes' info, fed by `Registry.onChange`. The
 * gateway and every node build it from the same registry list, so they agree on each user's owner
 * (a lookup never touches Redis). Pure: no timers, no I/O.
 */
export class NodeRing {
  private current: HashRing;
  private readonly byId = new Map<string, NodeInfo>();

  constructor(private readonly vnodes: number = DEFAULT_VNODES) {
    this.current = HashRing.from([], { vnodes });
  }

  /** The ring of the live nodes as last given to {@link update}. */
  get ring(): HashRing {
    return this.current;
  }

  /**
   * Replaces the live set (a `Registry.onChange` list). Returns the ring before and after, so a
   * caller can see who moved with `HashRing.moved(before, after, user)`; `changed` is false when
   * only URLs or start times changed.
   */
  update(nodes: readonly NodeInfo[]): { before: HashRing; after: HashRing; changed: boolean } {
    const before = this.current;
    this.byId.clear();
    for (const n of nodes) this.byId.set(n.node, { ...n });
    const after = HashRing.from(this.byId.keys(), { vnodes: this.vnodes });
    const changed = !after.equals(before);
    // Keep the old instance when nothing moved, so callers may compare rings by identity.
    if (changed) this.current = after;
    return { before, after: this.current, changed };
  }

  /** The owner of `user` and its URL, or `undefined` when no node is live. */
  route(user: string): Route | undefined {
    const node = this.current.nodeFor(user);
    if (node === undefined) return undefined;
    return { node, url: this.byId.get(node)!.url };
  }
}
