import type { StreamPosition } from '@switchboard/protocol';

/**
 * Where the client keeps its per-channel positions. Kept in `localStorage`, a page reload also
 * resumes where it was.
 */
export interface PositionStore {
  load(): Record<string, StreamPosition>;
  save(positions: Record<string, StreamPosition>): void;
}

/** Positions for the lifetime of the client object (the default). */
export class MemoryPositionStore implements PositionStore {
  private positions: Record<string, StreamPosition> = {};
  load(): Record<string, StreamPosition> {
    return { ...this.positions };
  }
  save(positions: Record<string, StreamPosition>): void {
    this.positions = { ...positions };
  }
}

/** Minimal Web Storage interface (`localStorage`, `sessionStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Positions in Web Storage under one key. Use one key per user (and per tab with
 * `sessionStorage`), so that two users on one browser do not share positions.
 */
export class WebStoragePositionStore implements PositionStore {
  constructor(
    private readonly storage: StorageLike,
    private readonly key = 'switchboard:positions',
  ) {}

  load(): Record<string, StreamPosition> {
    try {
      const value: unknown = JSON.parse(this.storage.getItem(this.key) ?? '{}');
      return typeof value === 'object' && value !== null ? (value as Record<string, StreamPosition>) : {};
    } catch {
      return {};
    }
  }

  save(positions: Record<string, StreamPosition>): void {
    try {
      this.storage.setItem(this.key, JSON.stringify(positions));
    } catch {
      // Storage full or denied (private mode): positions stay in memory for this page.
    }
  }
}
