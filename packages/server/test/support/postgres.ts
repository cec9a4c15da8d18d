/**
 * PostgreSQL for tests: a reachability check that fails in CI and skips locally (as redis-helpers'
 * does), and a database of the test's own, created fresh, migrated, and dropped afterwards.
 *
 * ```ts
 * describe('PostgresThing', { skip: postgresSkip }, () => {
 *   const db = new PostgresDatabase();
 *   before(() => db.create());
 *   after(() => db.drop());
 *   it('…', async () => { const pool = db.pool(); … db.url … });
 * });
 * ```
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/postgres/migrations.js';

export const PG_HOST = process.env.SWITCHBOARD_TEST_PG_HOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.SWITCHBOARD_TEST_PG_PORT ?? 5432);
export const PG_USER = process.env.SWITCHBOARD_TEST_PG_USER ?? 'postgres';

/** The URL of `database` on the test server. */
export function databaseUrl(database: string): string {
  return `postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${database}`;
}

async function reachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: databaseUrl('postgres'), connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The `skip` value for PostgreSQL suites: undefined when it answers, else the reason. In CI
 * (`CI=true`) a missing PostgreSQL is an error instead, so a green run always ran these tests.
 */
export const postgresSkip: string | undefined = await (async () => {
  if (await reachable()) return undefined;
  const message = `PostgreSQL is not running on ${PG_HOST}:${PG_PORT} (user ${PG_USER}, trust auth): start it with scripts/ensure-postgres.sh`;
  if (process.env.CI === 'true') throw new Error(message);
  return message;
})();

/** Runs one statement on the server's maintenance database. */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl('postgres') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A database of the test's own. */
export class PostgresDatabase {
  readonly name = `sb_test_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  readonly url = databaseUrl(this.name);
  private readonly pools: pg.Pool[] = [];

  /** Creates the database; `migrated` (default) also applies the schema. */
  async create(migrated = true): Promise<void> {
    await admin(`CREATE DATABASE ${this.name}`);
    if (migrated) await migrate(this.pool());
  }

  /** A pool on the database, ended by {@link drop}. */
  pool(max = 10): pg.Pool {
    const pool = new pg.Pool({ connectionString: this.url, max });
    pool.on('error', () => undefined);
    this.pools.push(pool);
    return pool;
  }

  /** Ends the pools and drops the database (closing whatever else is still connected to it). */
  async drop(): Promise<void> {
    await Promise.allSettled(this.pools.splice(0).map((p) => p.end()));
    await admin(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
  }
}
