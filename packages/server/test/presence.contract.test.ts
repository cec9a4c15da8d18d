/**
 * The PresenceStore contract (contracts/presence-contract.ts) against every backend: memory and Redis.
 */
import { after, describe } from 'node:test';
import { MemoryPresenceStore } from '../src/presence/memory-presence-store.js';
import type { PresenceStore } from '../src/presence/presence-store.js';
import { RedisPresenceStore } from '../src/presence/redis-presence-store.js';
import { presenceContract } from './contracts/presence-contract.js';
import { RedisFixture, redisSkip } from './redis-helpers.js';

const opened: PresenceStore[] = [];
after(() => Promise.all(opened.splice(0).map((s) => s.close())));

describe('PresenceStore contract: memory', () => {
  presenceContract(async (count) => {
    const store = new MemoryPresenceStore();
    opened.push(store);
    return Array.from({ length: count }, () => store);
  });
});

describe('PresenceStore contract: Redis', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  let n = 0;
  presenceContract(async (count) => {
    // A fresh prefix per test: each test starts with an empty cluster; one client per node.
    const prefix = `${redis.prefix}${n++}:`;
    const stores = [];
    for (let i = 0; i < count; i++) stores.push(new RedisPresenceStore({ redis: await redis.client(), prefix }));
    opened.push(...stores);
    return stores;
  });
});
