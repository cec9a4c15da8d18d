import type pg from 'pg';

/** One step of the schema: applied once, in order, inside a transaction. */
interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The schema, step by step. A step is never edited once released: a change is a new step.
 *
 * Offsets are dense per channel because every append takes the channel's row lock
 * (`switchboard_channels`), whichever node it comes from; times are milliseconds since the epoch,
 * given by the nodes, as in the other history stores. `data` is kept as the JSON text the
 * publisher sent (NULL when it sent none), byte for byte.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'history, idempotency keys and inbox acks',
    sql: `
CREATE TABLE switchboard_channels (
  channel text PRIMARY KEY,
  epoch text NOT NULL,
  last_offset bigint NOT NULL,
  touched_at bigint NOT NULL
);
CREATE INDEX switchboard_channels_touched ON switchboard_channels (touched_at);

CREATE TABLE switchboard_messages (
  channel text NOT NULL,
  msg_offset bigint NOT NULL,
  sender text,
  topic text NOT NULL,
  data text,
  ts bigint NOT NULL,
  receipt boolean NOT NULL DEFAULT false,
  PRIMARY KEY (channel, msg_offset)
);
CREATE INDEX switchboard_messages_ts ON switchboard_messages (ts);

CREATE TABLE switchboard_idempotency (
  channel text NOT NULL,
  key text NOT NULL,
  epoch text NOT NULL,
  msg_offset bigint NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (channel, key)
);
CREATE INDEX switchboard_idempotency_expires ON switchboard_idempotency (expires_at);

CREATE TABLE switchboard_acks (
  channel text PRIMARY KEY,
  epoch text NOT NULL,
  msg_offset bigint NOT NULL,
  updated_at bigint NOT NULL
);

-- The channel's epoch and latest offset, starting a fresh epoch when the channel is new or was idle
-- past its meta TTL (its messages then go with the old epoch). Locks the channel's row.
CREATE FUNCTION switchboard_ensure(p_channel text, p_fresh text, p_now bigint, p_meta_ttl bigint)
RETURNS TABLE (o_epoch text, o_offset bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  v_epoch text;
  v_offset bigint;
  v_touched bigint;
BEGIN
  SELECT c.epoch, c.last_offset, c.touched_at INTO v_epoch, v_offset, v_touched
  FROM switchboard_channels c WHERE c.channel = p_channel FOR UPDATE;
  IF NOT FOUND THEN
    -- Two nodes may start the channel at once: the second one's insert does nothing, and it reads the first's.
    INSERT INTO switchboard_channels (channel, epoch, last_offset, touched_at)
    VALUES (p_channel, p_fresh, 0, p_now)
    ON CONFLICT (channel) DO NOTHING;
    SELECT c.epoch, c.last_offset, c.touched_at INTO v_epoch, v_offset, v_touched
    FROM switchboard_channels c WHERE c.channel = p_channel FOR UPDATE;
  END IF;
  IF v_touched < p_now - p_meta_ttl THEN
    DELETE FROM switchboard_messages m WHERE m.channel = p_channel;
    UPDATE switchboard_channels c SET epoch = p_fresh, last_offset = 0, touched_at = p_now WHERE c.channel = p_channel;
    v_epoch := p_fresh;
    v_offset := 0;
  END IF;
  RETURN QUERY SELECT v_epoch, v_offset;
END
$fn$;

-- Appends one publication (unless p_key was appended to the channel within its window: then the
-- original position, with o_duplicate), keeps at most p_size, and answers the position.
CREATE FUNCTION switchboard_append(
  p_channel text, p_fresh text, p_sender text, p_topic text, p_data text, p_ts bigint, p_receipt boolean,
  p_size integer, p_key text, p_window bigint, p_now bigint, p_meta_ttl bigint)
RETURNS TABLE (o_duplicate boolean, o_epoch text, o_offset bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  v_epoch text;
  v_offset bigint;
  v_claimed boolean;
BEGIN
  IF p_key IS NOT NULL THEN
    -- A concurrent append of the same key waits here for the first one's commit, then sees it.
    INSERT INTO switchboard_idempotency AS i (channel, key, epoch, msg_offset, expires_at)
    VALUES (p_channel, p_key, '', 0, p_now + p_window)
    ON CONFLICT (channel, key) DO UPDATE SET epoch = '', msg_offset = 0, expires_at = EXCLUDED.expires_at
      WHERE i.expires_at <= p_now
    RETURNING true INTO v_claimed;
    IF v_claimed IS NULL THEN
      SELECT i.epoch, i.msg_offset INTO v_epoch, v_offset
      FROM switchboard_idempotency i WHERE i.channel = p_channel AND i.key = p_key;
      RETURN QUERY SELECT true, v_epoch, v_offset;
      RETURN;
    END IF;
  END IF;
  SELECT e.o_epoch, e.o_offset INTO v_epoch, v_offset FROM switchboard_ensure(p_channel, p_fresh, p_now, p_meta_ttl) e;
  v_offset := v_offset + 1;
  UPDATE switchboard_channels c SET last_offset = v_offset, touched_at = p_now WHERE c.channel = p_channel;
  IF p_size > 0 THEN
    INSERT INTO switchboard_messages (channel, msg_offset, sender, topic, data, ts, receipt)
    VALUES (p_channel, v_offset, p_sender, p_topic, p_data, p_ts, p_receipt);
    DELETE FROM switchboard_messages m WHERE m.channel = p_channel AND m.msg_offset <= v_offset - p_size;
  END IF;
  IF p_key IS NOT NULL THEN
    UPDATE switchboard_idempotency i SET epoch = v_epoch, msg_offset = v_offset WHERE i.channel = p_channel AND i.key = p_key;
  END IF;
  RETURN QUERY SELECT false, v_epoch, v_offset;
END
$fn$;

-- The channel's position, its oldest kept offset not older than p_cutoff, and at most p_limit
-- publications after p_since: one row per publication, or one row without one (m_offset NULL).
CREATE FUNCTION switchboard_read(
  p_channel text, p_fresh text, p_now bigint, p_meta_ttl bigint, p_since bigint, p_limit integer, p_cutoff bigint)
RETURNS TABLE (o_epoch text, o_offset bigint, o_first bigint, m_offset bigint, m_sender text, m_topic text,
  m_data text, m_ts bigint, m_receipt boolean) LANGUAGE plpgsql AS $fn$
DECLARE
  v_epoch text;
  v_offset bigint;
  v_first bigint;
BEGIN
  SELECT e.o_epoch, e.o_offset INTO v_epoch, v_offset FROM switchboard_ensure(p_channel, p_fresh, p_now, p_meta_ttl) e;
  SELECT m.msg_offset INTO v_first FROM switchboard_messages m
  WHERE m.channel = p_channel AND m.ts >= p_cutoff ORDER BY m.msg_offset LIMIT 1;
  v_first := coalesce(v_first, v_offset + 1);
  RETURN QUERY
    SELECT v_epoch, v_offset, v_first, m.msg_offset, m.sender, m.topic, m.data, m.ts, m.receipt
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT x.msg_offset, x.sender, x.topic, x.data, x.ts, x.receipt FROM switchboard_messages x
      WHERE x.channel = p_channel AND x.msg_offset > greatest(p_since, v_first - 1)
      ORDER BY x.msg_offset LIMIT p_limit
    ) AS m ON true;
END
$fn$;
`,
  },
  {
    version: 2,
    name: 'webhook outbox',
    sql: `
CREATE TABLE switchboard_webhooks (
  id text PRIMARY KEY,
  event text NOT NULL,
  attempts integer NOT NULL,
  due_at bigint NOT NULL
);
CREATE INDEX switchboard_webhooks_due ON switchboard_webhooks (due_at);
`,
  },
  {
    version: 3,
    name: 'appends in batches',
    sql: `
-- Every append of one event-loop turn of a node, in one call and one transaction (one commit):
-- row i of the answer is the outcome of the i-th append, as switchboard_append gives it. The caller
-- sorts the batch by channel (keeping each channel's order), so concurrent batches take their
-- channel locks in one order.
CREATE FUNCTION switchboard_append_batch(
  p_fresh text, p_channels text[], p_senders text[], p_topics text[], p_data text[], p_ts bigint[],
  p_receipts boolean[], p_sizes integer[], p_keys text[], p_window bigint, p_now bigint, p_meta_ttls bigint[])
RETURNS TABLE (o_index integer, o_duplicate boolean, o_epoch text, o_offset bigint) LANGUAGE plpgsql AS $fn$
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_channels, 1), 0) LOOP
    RETURN QUERY SELECT i, a.o_duplicate, a.o_epoch, a.o_offset
      FROM switchboard_append(p_channels[i], p_fresh, p_senders[i], p_topics[i], p_data[i], p_ts[i], p_receipts[i],
        p_sizes[i], p_keys[i], p_window, p_now, p_meta_ttls[i]) AS a;
  END LOOP;
END
$fn$;
`,
  },
];

/** The schema version this build needs. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Any fixed number: the advisory lock that keeps two nodes from migrating at once. */
const MIGRATION_LOCK = 7_310_274_001;

/** What {@link migrate} did. */
export interface MigrationReport {
  /** Versions applied by this call, in order (empty when the schema was up to date). */
  applied: number[];
  version: number;
}

/**
 * Brings the database's schema up to {@link SCHEMA_VERSION}: each missing step in a transaction of
 * its own, recorded in `switchboard_schema`. Nodes starting together take turns on an advisory
 * lock, so a step runs once.
 * @throws Error when the database's schema is newer than this build (an older node after an upgrade).
 */
export async function migrate(pool: pg.Pool): Promise<MigrationReport> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS switchboard_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await client.query<{ version: number }>('SELECT coalesce(max(version), 0) AS version FROM switchboard_schema');
    const current = rows[0]!.version;
    if (current > SCHEMA_VERSION) {
      throw new Error(`the database's schema is at version ${current}, newer than this build's ${SCHEMA_VERSION}: upgrade this node`);
    }
    const applied: number[] = [];
    for (const step of MIGRATIONS) {
      if (step.version <= current) continue;
      try {
        await client.query('BEGIN');
        await client.query(step.sql);
        await client.query('INSERT INTO switchboard_schema (version, name) VALUES ($1, $2)', [step.version, step.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`schema step ${step.version} (${step.name}) failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(step.version);
    }
    return { applied, version: SCHEMA_VERSION };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}
