import type { StreamPosition } from '@switchboard/protocol';

/**
 * Where each user's acked position in their inbox is kept, beside the inbox in the history store
 * (memory, Redis or PostgreSQL). An ack is cumulative: the position only moves forward within an
 * epoch; an ack of another epoch replaces it (the inbox started again).
 */
export interface AckStore {
  /** The acked position of `channel`, if any. Rejects when the store is unreachable. */
  acked(channel: string): Promise<StreamPosition | undefined>;
  /**
   * Moves the acked position of `channel` to `position` unless it is already there or past it in
   * the same epoch; atomic, whichever node asks. Resolves with the position it held before.
   */
  advance(channel: string, position: StreamPosition): Promise<StreamPosition | undefined>;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}

/** True when `next` moves an ack that stood at `held`. */
export function movesAck(held: StreamPosition | undefined, next: StreamPosition): boolean {
  return !held || held.epoch !== next.epoch || held.offset < next.offset;
}

/** Acks in process memory (the memory history's companion): not durable, like that history. */
export class MemoryAckStore implements AckStore {
  private readonly positions = new Map<string, StreamPosition & { at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  /** `ttlMs`: an ack not moved for this long is forgotten (the inbox's meta TTL). */
  constructor(private readonly ttlMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(60_000, ttlMs)));
    this.sweeper.unref();
  }

  async acked(channel: string): Promise<StreamPosition | undefined> {
    const p = this.positions.get(channel);
    return p ? { epoch: p.epoch, offset: p.offset } : undefined;
  }

  async advance(channel: string, position: StreamPosition): Promise<StreamPosition | undefined> {
    const before = await this.acked(channel);
    if (movesAck(before, position)) this.positions.set(channel, { epoch: position.epoch, offset: position.offset, at: Date.now() });
    return before;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.ttlMs;
    for (const [channel, p] of this.positions) if (p.at < cutoff) this.positions.delete(channel);
  }
}
