/**
 * The history stores a node can run on, for tests that run the same suite on each: memory, Redis
 * (a key prefix of the suite's own, deleted afterwards) and PostgreSQL (a database of its own).
 */
import { randomUUID } from 'node:crypto';
import type { NodeOptionsInput } from '../../src/index.js';
import { RedisFixture, deletePrefix, redisSkip } from '../redis-helpers.js';
import { PostgresDatabase, postgresSkip } from './postgres.js';

export interface HistoryStore {
  name: string;
  /** Why the suite is skipped here (the service is not running), if it is. */
  skip?: string | undefined;
  /** Node options for this store; called once per suite, after `setUp`. */
  options: () => NodeOptionsInput;
  setUp?: () => Promise<void>;
  /** Deletes what the suite stored and closes the test's own connections. */
  tearDown?: () => Promise<void>;
}

/** The three stores, isolated under `tag` (a few letters naming the suite in Redis keys). */
export function historyStores(tag: string): HistoryStore[] {
  const redis = new RedisFixture();
  // A prefix of the node's own (at most 32 characters), deleted afterwards.
  const prefix = `sbtest:${tag}:${randomUUID().slice(0, 8)}:`;
  const db = new PostgresDatabase();
  return [
    { name: 'memory', options: () => ({}) },
    {
      name: 'Redis',
      skip: redisSkip,
      options: () => ({ engine: 'redis', redisPrefix: prefix }),
      tearDown: async () => {
        await deletePrefix(await redis.client(), prefix);
        await redis.cleanup();
      },
    },
    {
      name: 'PostgreSQL',
      skip: postgresSkip,
      options: () => ({ history: 'postgres', databaseUrl: db.url }),
      setUp: () => db.create(false),
      tearDown: () => db.drop(),
    },
  ];
}
