/**
 * The History contract (contracts/history-contract.ts) against every backend: memory, Redis both
 * as a plain store and publishing from its append script (broadcast routing), and PostgreSQL.
 */
import { after, before, describe } from 'node:test';
import type { History } from '../src/history/history.js';
import { MemoryHistory } from '../src/history/memory-history.js';
import { PostgresHistory } from '../src/history/postgres-history.js';
import { RedisHistory } from '../src/history/redis-history.js';
import { historyContract, type OpenHistories } from './contracts/history-contract.js';
import { RedisFixture, redisSkip } from './redis-helpers.js';
import { PostgresDatabase, postgresSkip } from './support/postgres.js';

const opened: History[] = [];
after(() => Promise.all(opened.splice(0).map((h) => h.close())));

describe('History contract: memory', () => {
  historyContract(async (limits, count) => {
    const h = new MemoryHistory(limits);
    opened.push(h);
    return Array.from({ length: count }, () => h);
  });
});

/** Redis histories over a fresh prefix per call, one client per instance (one per node). */
function redisBackend(redis: RedisFixture, extra: { publish?: boolean; routing?: 'interest' | 'broadcast' } = {}): OpenHistories {
  let n = 0;
  return async (limits, count) => {
    const prefix = `${redis.prefix}${n++}:`;
    const histories = [];
    for (let i = 0; i < count; i++) histories.push(new RedisHistory({ redis: await redis.client(), prefix, ...limits, ...extra }));
    opened.push(...histories);
    return histories;
  };
}

describe('History contract: Redis', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  historyContract(redisBackend(redis));
});

describe('History contract: Redis, publishing in the append script (broadcast routing)', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  historyContract(redisBackend(redis, { publish: true, routing: 'broadcast' }));
});

describe('History contract: PostgreSQL', { skip: postgresSkip }, () => {
  const db = new PostgresDatabase();
  before(() => db.create());
  after(() => db.drop());
  // One database for the suite, emptied for each test; one pool per history (one per node).
  historyContract(async (limits, count) => {
    const pool = db.pool();
    await pool.query('TRUNCATE switchboard_channels, switchboard_messages, switchboard_idempotency, switchboard_acks');
    const histories = [new PostgresHistory({ pool, ...limits })];
    for (let i = 1; i < count; i++) histories.push(new PostgresHistory({ pool: db.pool(), ...limits }));
    opened.push(...histories);
    return histories;
  });
});
