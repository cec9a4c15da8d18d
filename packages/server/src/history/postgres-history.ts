import type pg from 'pg';
import type { Logger } from 'pino';
import type { StreamPosition } from '@switchboard/protocol';
import { uniqueIds } from '../ids.js';
import { publicationAt, type Publication, type PublicationInput } from '../publication.js';
import type { AppendOnceResult, History, HistoryPage } from './history.js';
import { isUserChannel, retentionClasses, type InboxRetention, type Retention } from './retention.js';

/** Options of {@link PostgresHistory}. */
export interface PostgresHistoryOptions {
  /** A pool on a database migrated to the current schema (`migrate`), owned by the caller. */
  pool: pg.Pool;
  historySize: number;
  historyTtlMs: number;
  historyMetaTtlMs: number;
  idempotencyWindowMs?: number;
  inbox?: InboxRetention | undefined;
  /** Where a failed retention sweep is reported. */
  log?: Logger;
  /** Clock, replaceable in tests. @default Date.now */
  now?: () => number;
}

/** Longest time between two retention sweeps. */
const MAX_SWEEP_EVERY_MS = 60_000;

/** Appends sent per call at most (a turn with more takes several calls). */
const MAX_BATCH = 500;

/** One append waiting for its turn's call. */
interface Pending {
  channel: string;
  input: PublicationInput;
  key: string | undefined;
  resolve: (result: AppendOnceResult) => void;
  reject: (err: unknown) => void;
}

/** A new epoch for a channel that has none (base64url, no random bytes per call). */
const freshEpoch = uniqueIds();

interface ReadRow {
  o_epoch: string;
  o_offset: string;
  o_first: string;
  m_offset: string | null;
  m_sender: string | null;
  m_topic: string | null;
  m_data: string | null;
  m_ts: string | null;
  m_receipt: boolean | null;
}

/**
 * History in PostgreSQL: durable, shared by every node. The appends of one event-loop turn go in
 * one call of the schema's `switchboard_append_batch` (one round trip, one transaction, one
 * commit); each append takes its channel's row lock — so offsets stay dense whichever node appends
 * — checks the idempotency key, stores and trims to the channel's size. A publication alone in
 * its turn goes out at once. Age limits are enforced by a sweep that deletes what is past them (every node
 * runs it; it is idempotent) and by reads, which never hand out an expired head. Tables and
 * functions: `postgres/migrations.ts`.
 */
export class PostgresHistory implements History {
  private readonly pool: pg.Pool;
  private readonly classes: { plain: Retention; inbox: Retention };
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private failing = false;
  private probe: NodeJS.Timeout | undefined;
  private closed = false;
  /** Appends of this turn, sent together once the turn's I/O is done. */
  private pending: Pending[] = [];
  /** True while a batch is being appended; appends meanwhile wait for the next batch. */
  private sending = false;

  constructor(private readonly options: PostgresHistoryOptions) {
    this.pool = options.pool;
    this.classes = retentionClasses(options);
    this.windowMs = options.idempotencyWindowMs ?? 300_000;
    this.now = options.now ?? Date.now;
    const every = Math.max(
      1000,
      Math.min(MAX_SWEEP_EVERY_MS, Math.floor(Math.min(this.classes.plain.ttlMs, this.classes.inbox.ttlMs) / 10)),
    );
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  /** False once closed, and while the last query failed for want of a connection. */
  get ready(): boolean {
    return !this.closed && !this.failing;
  }

  async append(channel: string, input: PublicationInput): Promise<Publication> {
    const result = await this.run(channel, input, undefined);
    if (result.duplicate) throw new Error('unexpected duplicate without an idempotency key');
    return result.pub;
  }

  appendOnce(channel: string, input: PublicationInput, key: string): Promise<AppendOnceResult> {
    return this.run(channel, input, key);
  }

  async position(channel: string): Promise<StreamPosition> {
    const keep = this.keep(channel);
    const { rows } = await this.query<{ o_epoch: string; o_offset: string }>('SELECT * FROM switchboard_ensure($1, $2, $3, $4)', [
      channel,
      freshEpoch(),
      this.now(),
      keep.metaTtlMs,
    ]);
    return { epoch: rows[0]!.o_epoch, offset: Number(rows[0]!.o_offset) };
  }

  async read(channel: string, since: number, limit: number): Promise<HistoryPage> {
    const keep = this.keep(channel);
    const now = this.now();
    const from = Math.max(0, Math.min(Math.floor(since), Number.MAX_SAFE_INTEGER - 1));
    const count = Math.max(0, Math.min(Math.floor(limit), 1_000_000));
    const { rows } = await this.query<ReadRow>('SELECT * FROM switchboard_read($1, $2, $3, $4, $5, $6, $7)', [
      channel,
      freshEpoch(),
      now,
      keep.metaTtlMs,
      from,
      count,
      now - keep.ttlMs,
    ]);
    const head = rows[0]!;
    const epoch = head.o_epoch;
    const publications: Publication[] = [];
    for (const row of rows) {
      if (row.m_offset === null) continue;
      const input: PublicationInput = {
        from: row.m_sender,
        topic: row.m_topic!,
        data: row.m_data === null ? undefined : JSON.parse(row.m_data),
        ts: Number(row.m_ts),
      };
      if (row.m_receipt) input.receipt = true;
      publications.push(publicationAt(channel, epoch, Number(row.m_offset), input));
    }
    return { epoch, offset: Number(head.o_offset), firstOffset: Number(head.o_first), publications };
  }

  /** Stops the sweep; does not end the injected pool: its creator owns it. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.stopProbe();
  }

  /**
   * Deletes what is past its retention: publications older than their channel's age limit,
   * idempotency keys past their window, channels idle past their meta TTL (with their publications),
   * inbox acks not moved for as long.
   */
  async sweep(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const { plain, inbox } = this.classes;
    try {
      await this.pool.query(
        `DELETE FROM switchboard_messages WHERE ts < $1 AND (channel LIKE 'user:%') = false OR ts < $2 AND channel LIKE 'user:%'`,
        [now - plain.ttlMs, now - inbox.ttlMs],
      );
      await this.pool.query('DELETE FROM switchboard_idempotency WHERE expires_at <= $1', [now]);
      await this.pool.query(
        `WITH gone AS (
           DELETE FROM switchboard_channels c
           WHERE c.touched_at < $1 AND (c.channel LIKE 'user:%') = false OR c.touched_at < $2 AND c.channel LIKE 'user:%'
           RETURNING c.channel)
         DELETE FROM switchboard_messages m USING gone WHERE m.channel = gone.channel`,
        [now - plain.metaTtlMs, now - inbox.metaTtlMs],
      );
      // Acks (inbox/postgres-acks.ts) live beside the inboxes and go with them.
      await this.pool.query('DELETE FROM switchboard_acks WHERE updated_at < $1', [now - inbox.metaTtlMs]);
    } catch (err) {
      this.options.log?.warn({ err }, 'history retention sweep failed; retried at the next one');
    }
  }

  private keep(channel: string): Retention {
    return isUserChannel(channel) ? this.classes.inbox : this.classes.plain;
  }

  private run(channel: string, input: PublicationInput, key: string | undefined): Promise<AppendOnceResult> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0 && !this.sending) setImmediate(this.flush);
      this.pending.push({ channel, input, key, resolve, reject });
    });
  }

  /**
   * Sends the appends that wait, one batch (of at most {@link MAX_BATCH}) at a time, until none is
   * left. One batch in flight per node: batches on several pool connections could commit out of
   * order, and a channel's offsets must follow the order the appends were called in (a session's
   * pipelined publications). Appends made while a batch is out go together in the next one.
   */
  private readonly flush = (): void => {
    if (this.sending) return;
    this.sending = true;
    void (async () => {
      while (this.pending.length > 0) {
        const batch = this.pending.slice(0, MAX_BATCH);
        this.pending = this.pending.slice(MAX_BATCH);
        // send() answers every append of its batch, failures included; a throw would stop the loop.
        await this.send(batch).catch((err: unknown) => batch.forEach((p) => p.reject(err)));
      }
      this.sending = false;
    })();
  };

  private async send(batch: Pending[]): Promise<void> {
    // By channel, each channel's appends in call order: concurrent batches lock channels in one order.
    const sorted = batch
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.channel < b.p.channel ? -1 : a.p.channel > b.p.channel ? 1 : a.i - b.i));
    const values = [
      freshEpoch(),
      sorted.map(({ p }) => p.channel),
      sorted.map(({ p }) => p.input.from),
      sorted.map(({ p }) => p.input.topic),
      sorted.map(({ p }) => (p.input.data === undefined ? null : JSON.stringify(p.input.data))),
      sorted.map(({ p }) => p.input.ts),
      sorted.map(({ p }) => p.input.receipt === true),
      sorted.map(({ p }) => this.keep(p.channel).size),
      sorted.map(({ p }) => p.key ?? null),
      this.windowMs,
      this.now(),
      sorted.map(({ p }) => this.keep(p.channel).metaTtlMs),
    ];
    let rows: { o_index: number; o_duplicate: boolean; o_epoch: string; o_offset: string }[];
    try {
      rows = (await this.appendBatch(values)).rows;
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    for (const row of rows) {
      const { p } = sorted[row.o_index - 1]!;
      const offset = Number(row.o_offset);
      if (row.o_duplicate) p.resolve({ duplicate: true, position: { epoch: row.o_epoch, offset } });
      else p.resolve({ duplicate: false, pub: publicationAt(p.channel, row.o_epoch, offset, p.input) });
    }
  }

  /**
   * One batch call. Two batches that race on one idempotency key of one channel may still wait on
   * each other's locks; PostgreSQL then aborts one (40P01, nothing of it was kept) and it is sent again.
   */
  private async appendBatch(values: unknown[]) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.query<{ o_index: number; o_duplicate: boolean; o_epoch: string; o_offset: string }>(
          'SELECT * FROM switchboard_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
          values,
        );
      } catch (err) {
        if ((err as { code?: unknown }).code !== '40P01' || attempt >= 3) throw err;
      }
    }
  }

  /** A query that keeps `ready` current: false while the database cannot be reached. */
  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.pool.query<R>(text, values);
      this.failing = false;
      return result;
    } catch (err) {
      if (isConnectionError(err)) this.markFailing();
      throw err;
    }
  }

  /**
   * The database is out of reach: `ready` is false until a probe (every second, whether traffic
   * comes or not — a node out of its balancer would get none) reaches it again.
   */
  private markFailing(): void {
    this.failing = true;
    if (this.probe || this.closed) return;
    this.probe = setInterval(() => {
      if (this.closed) return this.stopProbe();
      this.pool.query('SELECT 1').then(
        () => {
          this.failing = false;
          this.stopProbe();
        },
        () => undefined,
      );
    }, 1000);
    this.probe.unref();
  }

  private stopProbe(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }
}

/** A failure to reach the database (as opposed to an error in a query it ran). */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  // SQLSTATE class 08 (connection exception), 57P01-03 (the server is shutting down or restarting).
  if (typeof code === 'string') return code.startsWith('08') || code.startsWith('57P');
  return /timeout|ECONNREFUSED|ECONNRESET|Connection terminated|not queryable/i.test(err.message);
}
