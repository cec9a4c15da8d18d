import type pg from 'pg';
import type { StreamPosition } from '@switchboard/protocol';
import type { AckStore } from './acks.js';

/**
 * Acks in PostgreSQL (`switchboard_acks`, beside the history's tables): durable. The previous
 * position is read under the row's lock in the same statement that moves it.
 */
export class PostgresAckStore implements AckStore {
  constructor(private readonly pool: pg.Pool) {}

  async acked(channel: string): Promise<StreamPosition | undefined> {
    const { rows } = await this.pool.query<{ epoch: string; msg_offset: string }>(
      'SELECT epoch, msg_offset FROM switchboard_acks WHERE channel = $1',
      [channel],
    );
    return rows[0] ? { epoch: rows[0].epoch, offset: Number(rows[0].msg_offset) } : undefined;
  }

  async advance(channel: string, position: StreamPosition): Promise<StreamPosition | undefined> {
    const { rows } = await this.pool.query<{ epoch: string | null; msg_offset: string | null }>(
      `WITH held AS (SELECT a.epoch, a.msg_offset FROM switchboard_acks a WHERE a.channel = $1 FOR UPDATE),
       moved AS (
         INSERT INTO switchboard_acks AS a (channel, epoch, msg_offset, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel) DO UPDATE SET epoch = EXCLUDED.epoch, msg_offset = EXCLUDED.msg_offset, updated_at = EXCLUDED.updated_at
           WHERE a.epoch <> EXCLUDED.epoch OR a.msg_offset < EXCLUDED.msg_offset
         RETURNING 1)
       SELECT held.epoch, held.msg_offset FROM (SELECT 1) AS one LEFT JOIN held ON true`,
      [channel, position.epoch, position.offset, Date.now()],
    );
    const held = rows[0]!;
    return held.epoch === null ? undefined : { epoch: held.epoch, offset: Number(held.msg_offset) };
  }

  /** Does not end the injected pool: its creator owns it. */
  async close(): Promise<void> {}
}
