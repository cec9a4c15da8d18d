/**
 * SmallSet and SmallMap behave as `Set` and `Map` do — size, membership, values, insertion order —
 * through any sequence of additions and removals, across the change from one element held in a
 * field to a hash table and back.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SmallMap, SmallSet } from '../src/small-collections.js';

const members = ['a', 'b', 'c', 'd'].map((name) => ({ name }));

describe('SmallSet', () => {
  it('agrees with Set after every step of any sequence of add and delete', () => {
    const op = fc.record({ add: fc.boolean(), member: fc.constantFrom(...members) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const small = new SmallSet<{ name: string }>();
        const model = new Set<{ name: string }>();
        for (const { add, member } of ops) {
          if (add) {
            small.add(member);
            model.add(member);
          } else assert.equal(small.delete(member), model.delete(member));
          assert.equal(small.size, model.size);
          assert.deepEqual([...small], [...model]);
          assert.equal(small.only, model.size === 1 ? [...model][0] : undefined);
          for (const m of members) assert.equal(small.has(m), model.has(m));
        }
      }),
    );
  });

  it('lets an iteration under way remove members, the way a Set does', () => {
    const set = new SmallSet<{ name: string }>().add(members[0]!).add(members[1]!).add(members[2]!);
    const seen: string[] = [];
    for (const m of set) {
      seen.push(m.name);
      set.delete(m);
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.equal(set.size, 0);
  });
});

describe('SmallMap', () => {
  it('agrees with Map after every step of any sequence of set and delete', () => {
    const op = fc.record({ set: fc.boolean(), key: fc.constantFrom('k1', 'k2', 'k3'), value: fc.nat(9) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const small = new SmallMap<string, number>();
        const model = new Map<string, number>();
        for (const { set, key, value } of ops) {
          if (set) {
            small.set(key, value);
            model.set(key, value);
          } else assert.equal(small.delete(key), model.delete(key));
          assert.equal(small.size, model.size);
          assert.deepEqual([...small], [...model]);
          assert.deepEqual([...small.values()], [...model.values()]);
          for (const k of ['k1', 'k2', 'k3']) {
            assert.equal(small.get(k), model.get(k));
            assert.equal(small.has(k), model.has(k));
          }
        }
      }),
    );
  });

  it('holds an entry whose value is undefined', () => {
    const map = new SmallMap<string, undefined>().set('k', undefined);
    assert.equal(map.size, 1);
    assert.equal(map.has('k'), true);
    assert.deepEqual([...map], [['k', undefined]]);
  });
});
