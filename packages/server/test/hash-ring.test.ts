/**
 * HashRing: determinism, spread and minimal movement on membership changes.
 * Stated tolerances (160 virtual nodes, node ids n1…nN, 100 000 keys `user-<i>`):
 * - spread: every node holds the mean ±15 % of the keys, for N = 2…12;
 * - growth: going from N to N+1 nodes moves 1/(N+1) ±15 % (relative) of the keys, N = 1…11, and
 *   every moved key moves to the new node;
 * - removal: removing a node moves exactly the keys it owned.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DEFAULT_VNODES, HashRing, RING_MAX, hashKey } from '../src/registry/hash-ring.js';

const KEYS = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);
/** Key positions computed once: the tests below look owners up by position (ownerAt) to stay fast. */
const POSITIONS = KEYS.map(hashKey);
const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

function shares(ring: HashRing): Map<string, number> {
  const counts = new Map<string, number>(ring.nodes.map((n) => [n, 0]));
  for (const p of POSITIONS) {
    const owner = ring.ownerAt(p)!;
    counts.set(owner, counts.get(owner)! + 1);
  }
  return counts;
}

describe('HashRing', () => {
  it('hashes with the first 6 bytes of MD5, big-endian, as documented', () => {
    const hex = createHash('md5').update('alice').digest('hex');
    assert.equal(hashKey('alice'), parseInt(hex.slice(0, 12), 16));
    // A fixed value, so a change of the hash (which would move every user) cannot pass unnoticed.
    assert.equal(hashKey('alice'), 0x6384e2b2184b);
    assert.ok(hashKey('é') >= 0 && hashKey('é') <= RING_MAX);
    assert.notEqual(hashKey('é'), hashKey('e'));
  });

  it('is deterministic: the same ids in any order, with duplicates, give the same owners', () => {
    const a = HashRing.from(['n1', 'n2', 'n3']);
    const b = HashRing.from(['n3', 'n1', 'n2', 'n1']);
    assert.deepEqual(b.nodes, ['n1', 'n2', 'n3']);
    assert.equal(a.vnodes, DEFAULT_VNODES);
    assert.ok(a.equals(b));
    for (let i = 0; i < 5000; i++) assert.equal(a.nodeFor(KEYS[i]!), b.nodeFor(KEYS[i]!));
    // Pinned owners: a ring computed by another process, version or language must agree with these.
    assert.deepEqual(
      ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((u) => a.nodeFor(u)),
      ['n3', 'n2', 'n2', 'n2', 'n2', 'n1'],
    );
  });

  it('answers undefined on an empty ring and the only node on a one-node ring', () => {
    const empty = HashRing.from([]);
    assert.equal(empty.empty, true);
    assert.equal(empty.nodeFor('alice'), undefined);
    const one = HashRing.from(['solo']);
    for (let i = 0; i < 1000; i++) assert.equal(one.nodeFor(KEYS[i]!), 'solo');
  });

  it('rejects a bad number of virtual nodes and empty ids', () => {
    assert.throws(() => HashRing.from(['n1'], { vnodes: 0 }), /vnodes must be a whole number/);
    assert.throws(() => HashRing.from(['n1'], { vnodes: 1.5 }), /vnodes must be a whole number/);
    assert.throws(() => HashRing.from(['']), /non-empty/);
  });

  it('spreads 100k keys within ±15 % of the mean per node for 2…12 nodes', () => {
    for (let n = 2; n <= 12; n++) {
      const mean = KEYS.length / n;
      for (const [node, count] of shares(HashRing.from(ids(n)))) {
        const deviation = Math.abs(count - mean) / mean;
        assert.ok(
          deviation <= 0.15,
          `${n} nodes: ${node} holds ${count} keys, ${(deviation * 100).toFixed(1)} % off the mean ${mean.toFixed(0)}`,
        );
      }
    }
  });

  it("states each node's share of the ring: summing to 1 and matching the share of 100k keys it owns", () => {
    assert.deepEqual([...HashRing.from([]).shares()], []);
    assert.deepEqual([...HashRing.from(['solo']).shares()], [['solo', 1]]);
    for (const n of [2, 3, 7]) {
      const ring = HashRing.from(ids(n));
      const stated = ring.shares();
      const total = [...stated.values()].reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total - 1) < 1e-9, `${n} nodes: shares sum to ${total}`);
      for (const [node, count] of shares(ring)) {
        // 100k keys measure a share to about ±0.5 percentage points.
        const measured = count / KEYS.length;
        assert.ok(Math.abs(stated.get(node)! - measured) < 0.01, `${n} nodes: ${node} states ${stated.get(node)} but owns ${measured}`);
      }
    }
  });

  it('spreads worse with few virtual nodes (so the spread test measures the virtual nodes)', () => {
    const mean = KEYS.length / 5;
    const worst = Math.max(...[...shares(HashRing.from(ids(5), { vnodes: 2 })).values()].map((c) => Math.abs(c - mean) / mean));
    assert.ok(worst > 0.15, `with 2 virtual nodes the worst deviation was only ${worst}`);
  });

  it('going from N to N+1 nodes moves 1/(N+1) ±15 % of the keys, all of them to the new node', () => {
    for (let n = 1; n <= 11; n++) {
      const before = HashRing.from(ids(n));
      const after = HashRing.from(ids(n + 1));
      const added = `n${n + 1}`;
      let moved = 0;
      for (const p of POSITIONS) {
        const was = before.ownerAt(p);
        const is = after.ownerAt(p);
        if (was === is) continue;
        moved++;
        assert.equal(is, added, `a key moved from ${was} to ${is}, not to the new node`);
      }
      const expected = 1 / (n + 1);
      const fraction = moved / KEYS.length;
      assert.ok(
        Math.abs(fraction - expected) / expected <= 0.15,
        `${n}→${n + 1} nodes moved ${fraction.toFixed(4)} of the keys, expected ${expected.toFixed(4)} ±15 %`,
      );
    }
  });

  it('removing a node moves exactly the keys it owned, each to a remaining node', () => {
    const before = HashRing.from(ids(5));
    const after = HashRing.from(['n1', 'n2', 'n4', 'n5']);
    let owned = 0;
    for (let i = 0; i < POSITIONS.length; i++) {
      const was = before.ownerAt(POSITIONS[i]!);
      const is = after.ownerAt(POSITIONS[i]!);
      if (was === 'n3') {
        owned++;
        assert.notEqual(is, 'n3');
        assert.equal(HashRing.moved(before, after, KEYS[i]!), true);
      } else {
        assert.equal(is, was, `${KEYS[i]} moved from ${was} to ${is} though n3 did not own it`);
      }
    }
    assert.ok(owned > 0);
  });
});
