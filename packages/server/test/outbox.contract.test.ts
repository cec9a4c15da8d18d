/** The webhook outbox contract (contracts/outbox-contract.ts) against memory, Redis and PostgreSQL. */
import { after, before, describe } from 'node:test';
import { MemoryOutbox } from '../src/webhooks/outbox.js';
import { PostgresOutbox } from '../src/webhooks/postgres-outbox.js';
import { RedisOutbox } from '../src/webhooks/redis-outbox.js';
import { outboxContract } from './contracts/outbox-contract.js';
import { RedisFixture, redisSkip } from './redis-helpers.js';
import { PostgresDatabase, postgresSkip } from './support/postgres.js';

describe('Webhook outbox contract: memory', () => {
  outboxContract(async (count) => {
    const o = new MemoryOutbox();
    return Array.from({ length: count }, () => o);
  });
});

describe('Webhook outbox contract: Redis', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  let n = 0;
  outboxContract(async (count) => {
    const prefix = `${redis.prefix}${n++}:`;
    const out = [];
    for (let i = 0; i < count; i++) out.push(new RedisOutbox(await redis.client(), prefix));
    return out;
  });
});

describe('Webhook outbox contract: PostgreSQL', { skip: postgresSkip }, () => {
  const db = new PostgresDatabase();
  before(() => db.create());
  after(() => db.drop());
  outboxContract(async (count) => {
    const pool = db.pool();
    await pool.query('TRUNCATE switchboard_webhooks');
    const out = [new PostgresOutbox(pool)];
    for (let i = 1; i < count; i++) out.push(new PostgresOutbox(db.pool()));
    return out;
  });
});
