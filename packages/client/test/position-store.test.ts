/** Position stores: in memory (the default) and in Web Storage, robust to bad data and full storage. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryPositionStore, WebStoragePositionStore, type StorageLike } from '../src/index.js';

/** An in-memory Storage; `failWrites` makes setItem throw like a full quota or private mode. */
class FakeStorage implements StorageLike {
  readonly items = new Map<string, string>();
  failWrites = false;
  writes = 0;
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.writes++;
    if (this.failWrites) throw new Error('QuotaExceededError');
    this.items.set(key, value);
  }
}

const positions = { 'user:alice': { epoch: 'e1', offset: 12 }, 'group:ops': { epoch: 'e2', offset: 0 } };

describe('MemoryPositionStore', () => {
  it('starts empty and returns what was saved', () => {
    const store = new MemoryPositionStore();
    assert.deepEqual(store.load(), {});
    store.save(positions);
    assert.deepEqual(store.load(), positions);
  });

  it('keeps a copy: changing the saved or loaded object does not change the store', () => {
    const store = new MemoryPositionStore();
    const mine: Record<string, { epoch: string; offset: number }> = { ...positions };
    store.save(mine);
    mine['broadcast'] = { epoch: 'x', offset: 1 };
    const loaded = store.load();
    loaded['other'] = { epoch: 'y', offset: 2 };
    assert.deepEqual(store.load(), positions);
  });
});

describe('WebStoragePositionStore', () => {
  it('round-trips positions as JSON under the default key', () => {
    const storage = new FakeStorage();
    new WebStoragePositionStore(storage).save(positions);
    assert.deepEqual(JSON.parse(storage.items.get('switchboard:positions')!), positions);
    // A new store on the same storage (a page reload) finds them.
    assert.deepEqual(new WebStoragePositionStore(storage).load(), positions);
  });

  it('keeps stores with different keys apart (two users on one browser)', () => {
    const storage = new FakeStorage();
    const alice = new WebStoragePositionStore(storage, 'sb:alice');
    const bob = new WebStoragePositionStore(storage, 'sb:bob');
    alice.save(positions);
    assert.deepEqual(bob.load(), {});
    assert.deepEqual(alice.load(), positions);
  });

  it('loads {} from empty storage', () => {
    assert.deepEqual(new WebStoragePositionStore(new FakeStorage()).load(), {});
  });

  it('loads {} from corrupt JSON or JSON that is not an object', () => {
    for (const bad of ['{not json', '', 'null', '42', '"text"']) {
      const storage = new FakeStorage();
      storage.items.set('switchboard:positions', bad);
      assert.deepEqual(new WebStoragePositionStore(storage).load(), {}, `for ${JSON.stringify(bad)}`);
    }
  });

  it('does not throw when setItem throws (quota, private mode); what was stored stays', () => {
    const storage = new FakeStorage();
    const store = new WebStoragePositionStore(storage);
    store.save(positions);
    storage.failWrites = true;
    assert.doesNotThrow(() => store.save({ 'user:alice': { epoch: 'e1', offset: 99 } }));
    assert.equal(storage.writes, 2, 'the write was attempted');
    assert.deepEqual(store.load(), positions);
  });

  it('does not throw when getItem throws (storage denied)', () => {
    const storage: StorageLike = {
      getItem: () => {
        throw new Error('SecurityError');
      },
      setItem: () => undefined,
    };
    assert.deepEqual(new WebStoragePositionStore(storage).load(), {});
  });
});
