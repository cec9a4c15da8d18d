import type pg from 'pg';
import type { AddResult, ClaimedEvent, WebhookEvent, WebhookOutbox } from './outbox.js';

/**
 * The outbox in PostgreSQL (`switchboard_webhooks`): durable. A claim takes the due rows with
 * `FOR UPDATE SKIP LOCKED` and moves their due time to the end of the lease, so two nodes never
 * claim one event at once and a node that dies lets its events come due again.
 */
export class PostgresOutbox implements WebhookOutbox {
  constructor(private readonly pool: pg.Pool) {}

  async add(event: WebhookEvent, dueAt: number, max: number): Promise<AddResult> {
    const { rows } = await this.pool.query<{ result: string }>(
      `WITH queued AS (SELECT count(*) AS n FROM switchboard_webhooks),
       added AS (
         INSERT INTO switchboard_webhooks (id, event, attempts, due_at)
         SELECT $1, $2, 0, $3 FROM queued WHERE queued.n < $4
         ON CONFLICT (id) DO NOTHING
         RETURNING 1)
       SELECT CASE WHEN EXISTS (SELECT 1 FROM added) THEN 'added'
                   WHEN EXISTS (SELECT 1 FROM switchboard_webhooks WHERE id = $1) THEN 'duplicate'
                   ELSE 'full' END AS result`,
      [event.id, JSON.stringify(event), dueAt, max],
    );
    return rows[0]!.result as AddResult;
  }

  async claim(now: number, leaseUntil: number, max: number): Promise<ClaimedEvent[]> {
    const { rows } = await this.pool.query<{ event: string; attempts: number }>(
      `UPDATE switchboard_webhooks w SET due_at = $2
       WHERE w.id IN (SELECT id FROM switchboard_webhooks WHERE due_at <= $1 ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING w.event, w.attempts`,
      [now, leaseUntil, max],
    );
    return rows.map((r) => ({ event: JSON.parse(r.event) as WebhookEvent, attempts: r.attempts }));
  }

  async done(id: string): Promise<void> {
    await this.pool.query('DELETE FROM switchboard_webhooks WHERE id = $1', [id]);
  }

  async retry(claimed: ClaimedEvent, attempts: number, dueAt: number): Promise<void> {
    await this.pool.query('UPDATE switchboard_webhooks SET attempts = $2, due_at = $3 WHERE id = $1', [claimed.event.id, attempts, dueAt]);
  }

  async size(): Promise<number> {
    const { rows } = await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM switchboard_webhooks');
    return Number(rows[0]!.n);
  }
}
