import { HashRing } from '../registry/hash-ring.js';
import type { NodeState } from './health.js';

/** The gateway's placement policies (`SWITCHBOARD_GATEWAY_POLICY`). */
export const POLICY_NAMES = ['hash', 'round-robin', 'least-conn'] as const;

/** A placement policy's name. */
export type PolicyName = (typeof POLICY_NAMES)[number];

/** Picks the node for a new connection. */
export interface Policy {
  readonly name: PolicyName;
  /**
   * The node for a connection of `user`, among `live` (healthy nodes, sorted by id, never
   * empty); `ring` is the cluster's ring (every node with a lease, as the nodes see it).
   */
  pick(user: string, live: readonly NodeState[], ring: HashRing): NodeState;
}

/** The policy called `name`. */
export function createPolicy(name: PolicyName): Policy {
  switch (name) {
    case 'hash':
      return new HashPolicy();
    case 'round-robin':
      return new RoundRobinPolicy();
    case 'least-conn':
      return new LeastConnPolicy();
    default: {
      const never: never = name;
      throw new Error(`unknown gateway policy "${String(never)}"`);
    }
  }
}

/** Each new connection goes to the next live node in id order. */
export class RoundRobinPolicy implements Policy {
  readonly name = 'round-robin' as const;
  private next = 0;

  pick(_user: string, live: readonly NodeState[]): NodeState {
    const node = live[this.next % live.length]!;
    this.next = (this.next + 1) % 1_000_000_007;
    return node;
  }
}

/**
 * The node with the fewest sessions: what it reported in its last `/readyz` (sessions from any
 * gateway or balancer, and direct ones) plus the upgrades this gateway sent it since, so a burst
 * between two probes does not all land on one node. Ties go round in turn.
 */
export class LeastConnPolicy implements Policy {
  readonly name = 'least-conn' as const;
  private turn = 0;

  pick(_user: string, live: readonly NodeState[]): NodeState {
    const start = this.turn++ % live.length;
    let best: NodeState | undefined;
    let bestLoad = Infinity;
    for (let i = 0; i < live.length; i++) {
      const node = live[(start + i) % live.length]!;
      const load = node.reported + node.sentSinceReport;
      if (load < bestLoad) {
        best = node;
        bestLoad = load;
      }
    }
    return best!;
  }
}

/**
 * The user's owner on the cluster's ring, the node that `/v1/route` names and that `hash` routing
 * on the nodes delivers to. If the owner is not live (its `/readyz` fails, or it is being left
 * out after a failed connect), the owner on the ring of the live nodes: the same node for every
 * session of that user, and the one the cluster ring will name once the owner's lease lapses.
 */
export class HashPolicy implements Policy {
  readonly name = 'hash' as const;
  private fallback: { key: string; ring: HashRing } | undefined;

  pick(user: string, live: readonly NodeState[], ring: HashRing): NodeState {
    const owner = ring.nodeFor(user);
    const found = live.find((n) => n.id === owner);
    if (found) return found;
    return live.find((n) => n.id === this.liveRing(live, ring.vnodes).nodeFor(user))!;
  }

  /** The ring of the live nodes, rebuilt only when that set changes. */
  private liveRing(live: readonly NodeState[], vnodes: number): HashRing {
    const key = live.map((n) => n.id).join('\n');
    if (this.fallback?.key !== key)
      this.fallback = {
        key,
        ring: HashRing.from(
          live.map((n) => n.id),
          { vnodes },
        ),
      };
    return this.fallback.ring;
  }
}
