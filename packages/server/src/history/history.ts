import type { StreamPosition } from '@switchboard/protocol';
import type { Publication, PublicationInput } from '../publication.js';

/** A slice of a channel's history. */
export interface HistoryPage {
  /** The channel's current epoch. */
  epoch: string;
  /** The channel's latest offset (0 when nothing was ever published in this epoch). */
  offset: number;
  /** Publications after the requested offset, oldest first. */
  publications: Publication[];
  /** The lowest offset still kept; `offset + 1` when the history is empty. */
  firstOffset: number;
}

/** Outcome of {@link History.appendOnce}. */
export type AppendOnceResult =
  | { duplicate: false; pub: Publication }
  /** The key was appended within the idempotency window: nothing was appended this time. */
  | { duplicate: true; position: StreamPosition };

/**
 * Per-channel bounded stream of publications with dense offsets and an epoch.
 * Offsets start at 1 and grow by exactly 1 per append within an epoch; the epoch changes when the
 * channel's history is lost, so that a client is never silently handed a gap. Appends called on
 * one instance without waiting for each other get a channel's offsets in call order (a session's
 * pipelined publications rely on it).
 */
export interface History {
  /** Appends and assigns the next offset. Rejects when the store is unreachable. */
  append(channel: string, input: PublicationInput): Promise<Publication>;
  /**
   * Appends unless `key` was appended to `channel` within the idempotency window, in which case
   * it answers the original position. The check and the append are one atomic step.
   */
  appendOnce(channel: string, input: PublicationInput, key: string): Promise<AppendOnceResult>;
  /** The channel's current epoch and latest offset. Rejects when the store is unreachable. */
  position(channel: string): Promise<StreamPosition>;
  /** Publications with offset > `since`, oldest first, at most `limit`. Rejects when the store is unreachable. */
  read(channel: string, since: number, limit: number): Promise<HistoryPage>;
  /** True while the store is reachable. */
  readonly ready: boolean;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
