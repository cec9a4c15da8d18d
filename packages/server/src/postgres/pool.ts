import pg from 'pg';
import type { Logger } from 'pino';
import { ServiceUnreachableError } from '../service-unreachable.js';

/** How long {@link connectPostgres} waits for PostgreSQL before giving up with a clear message. */
export const POSTGRES_CONNECT_TIMEOUT_MS = 5000;

/** Thrown when PostgreSQL does not answer at start-up. The message names `DATABASE_URL` and how to fix it. */
export class PostgresUnreachableError extends ServiceUnreachableError {
  constructor(message: string) {
    super('ERR_POSTGRES_UNREACHABLE', message);
  }
}

/**
 * A PostgreSQL URL without its password, for messages and logs: the user info's password and a
 * `password=` query parameter are both replaced.
 */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:[REDACTED]@').replace(/([?&]password=)[^&#]*/gi, '$1[REDACTED]');
}

/** Options of {@link createPostgresPool}. */
export interface PostgresPoolOptions {
  url: string;
  /** `application_name` of the connections (seen in `pg_stat_activity`). */
  name: string;
  log: Logger;
  /** Connections at most. @default 10 */
  max?: number;
}

/**
 * A node-postgres pool with the settings the stores rely on: a connect timeout (a query while
 * PostgreSQL is down fails within it instead of waiting), idle connections released, and pool
 * errors (an idle connection cut by the server) logged once per outage instead of crashing.
 */
export function createPostgresPool(options: PostgresPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    application_name: `switchboard:${options.name}`,
    max: options.max ?? 10,
    connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: 30_000,
  });
  const where = redactDatabaseUrl(options.url);
  let warned = false;
  pool.on('error', (err) => {
    if (warned) return;
    warned = true;
    options.log.warn({ database: where, detail: redactDatabaseUrl(err.message) }, 'PostgreSQL connection lost');
  });
  pool.on('connect', () => {
    if (warned) options.log.info({ database: where }, 'PostgreSQL connection back');
    warned = false;
  });
  return pool;
}

/**
 * Checks that PostgreSQL answers through `pool`.
 * @throws PostgresUnreachableError naming `DATABASE_URL` (without its password) and how to fix it.
 */
export async function connectPostgres(pool: pg.Pool, url: string): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    const why = redactDatabaseUrl((err as Error).message).replace(/\.$/, '');
    throw new PostgresUnreachableError(
      `PostgreSQL is not reachable at ${redactDatabaseUrl(url)} (DATABASE_URL): ${why}. ` +
        'Start it (e.g. `service postgresql start`), create the database (`createdb switchboard`), or point DATABASE_URL at it.',
    );
  }
}
