import { createHash } from 'node:crypto';

/**
 * Consistent-hash ring with virtual nodes: which node owns a key (a user id), and which keys
 * change owner when the set of nodes changes.
 *
 * ## The hash
 * A position on the ring is the **first 6 bytes of the MD5 digest of the UTF-8 bytes, read as a
 * big-endian unsigned integer** (0 ≤ position < 2^48). In any language:
 * `parseInt(md5hex(s).slice(0, 12), 16)`.
 * - MD5 because it is everywhere (Node, browsers' libraries, Redis Lua has none but no script
 *   needs it, every ops language) and spreads its output uniformly; it is not used for security,
 *   so its broken collision resistance does not matter here (ketama, the classic ring, uses it too).
 * - 48 bits because a JS number holds them exactly: positions compare as plain numbers, with no
 *   BigInt on the lookup path, and 2^48 positions make collisions between the few thousand virtual
 *   nodes of a cluster vanishingly rare (and deterministic when they happen: see below).
 *
 * A key's position is the hash of the key itself (the gateway and the nodes hash the user id,
 * the token's `sub`, not `user:<id>`). Virtual node `i` (0-based) of node `n` sits at the hash of
 * `` `${n}#${i}` ``.
 *
 * ## Ownership
 * A key belongs to the first virtual node at or after its position, going round past 2^48 − 1 to
 * the first virtual node. Two virtual nodes on one position (never seen in practice) are settled
 * by node id: the smaller id keeps the position. So the owner depends only on the set of node ids
 * and the number of virtual nodes — never on the order they are given in, the time or the process.
 *
 * ## Virtual nodes
 * {@link DEFAULT_VNODES} = 160 per node (ketama's figure). A node's share of the keys then has a
 * relative standard deviation of about 1/√160 ≈ 8 %: for the ids `n1`…`nN`, N = 2…12, every
 * node holds the mean ±15 % of 100 000 keys, and adding `nN+1` moves 1/(N+1) ±15 % of the keys
 * (test/hash-ring.test.ts checks both). Unlucky id sets do worse (about ±30 % in the worst of 200
 * random sets of 3–10 nodes). More virtual nodes even the shares out at the cost of a bigger ring
 * (12 bytes per virtual node) and a slower rebuild (one MD5 per virtual node, only when the
 * membership changes). Every gateway and node of a cluster must use the same number.
 */
export class HashRing {
  /** The node ids on the ring, sorted, without duplicates. */
  readonly nodes: readonly string[];
  /** Virtual nodes per node. */
  readonly vnodes: number;
  /** Sorted positions of the virtual nodes (one entry per distinct position). */
  private readonly points: Float64Array;
  /** `owners[i]` is the index in `nodes` of the node at `points[i]`. */
  private readonly owners: Uint32Array;

  private constructor(nodes: readonly string[], vnodes: number) {
    this.nodes = Object.freeze([...nodes]);
    this.vnodes = vnodes;
    const entries: { pos: number; owner: number }[] = [];
    nodes.forEach((node, owner) => {
      for (let i = 0; i < vnodes; i++) entries.push({ pos: hashKey(`${node}#${i}`), owner });
    });
    // Ties on a position go to the smaller node id: `nodes` is sorted, so the smaller index.
    entries.sort((a, b) => a.pos - b.pos || a.owner - b.owner);
    const points: number[] = [];
    const owners: number[] = [];
    for (const e of entries) {
      if (points.length > 0 && points[points.length - 1] === e.pos) continue;
      points.push(e.pos);
      owners.push(e.owner);
    }
    this.points = Float64Array.from(points);
    this.owners = Uint32Array.from(owners);
  }

  /**
   * A ring of the given node ids (any order; duplicates are ignored).
   * @param options.vnodes virtual nodes per node, a whole number from 1 to 10 000. Default {@link DEFAULT_VNODES}.
   * @throws RangeError for a bad `vnodes` or an empty node id.
   */
  static from(nodeIds: Iterable<string>, options: { vnodes?: number } = {}): HashRing {
    const vnodes = options.vnodes ?? DEFAULT_VNODES;
    if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > 10_000) throw new RangeError('vnodes must be a whole number from 1 to 10000');
    const ids = [...new Set(nodeIds)];
    if (ids.some((id) => typeof id !== 'string' || id.length === 0)) throw new RangeError('node ids must be non-empty strings');
    ids.sort(compareIds);
    return new HashRing(ids, vnodes);
  }

  /** True when the ring has no node: {@link nodeFor} then answers `undefined`. */
  get empty(): boolean {
    return this.nodes.length === 0;
  }

  /** The node that owns `key` (a user id), or `undefined` on an empty ring. O(log(nodes × vnodes)). */
  nodeFor(key: string): string | undefined {
    return this.ownerAt(hashKey(key));
  }

  /** The node that owns ring position `position` (see {@link hashKey}), or `undefined` on an empty ring. */
  ownerAt(position: number): string | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    // First point >= position (lower bound); past the last one, wrap to the first.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < position) lo = mid + 1;
      else hi = mid;
    }
    return this.nodes[this.owners[lo === n ? 0 : lo]!];
  }

  /**
   * Each node's share of the ring (of the keys it owns, on average): the arcs that end at its
   * virtual nodes, over the whole ring. The shares sum to 1; an empty ring has none.
   */
  shares(): Map<string, number> {
    const shares = new Map<string, number>(this.nodes.map((n) => [n, 0]));
    const n = this.points.length;
    for (let i = 0; i < n; i++) {
      // Point i owns the positions after point i-1 up to itself; point 0 owns the wrap past the last.
      const arc = i === 0 ? this.points[0]! + (RING_MAX + 1 - this.points[n - 1]!) : this.points[i]! - this.points[i - 1]!;
      const node = this.nodes[this.owners[i]!]!;
      shares.set(node, shares.get(node)! + arc / (RING_MAX + 1));
    }
    return shares;
  }

  /** True when the other ring has the same nodes and virtual nodes (so every key has the same owner). */
  equals(other: HashRing): boolean {
    return this.vnodes === other.vnodes && this.nodes.length === other.nodes.length && this.nodes.every((n, i) => n === other.nodes[i]);
  }

  /** True when `key` has another owner on `after` than on `before`. O(log n). */
  static moved(before: HashRing, after: HashRing, key: string): boolean {
    const position = hashKey(key);
    return before.ownerAt(position) !== after.ownerAt(position);
  }
}

/** Virtual nodes per node unless told otherwise. */
export const DEFAULT_VNODES = 160;

/** The largest ring position, 2^48 − 1. */
export const RING_MAX = 2 ** 48 - 1;

/** The ring position of `key`: the first 6 bytes of MD5(UTF-8 of key), big-endian. */
export function hashKey(key: string): number {
  return createHash('md5').update(key, 'utf8').digest().readUIntBE(0, 6);
}

/** Code-unit order, the same in every process (localeCompare would depend on the locale). */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
