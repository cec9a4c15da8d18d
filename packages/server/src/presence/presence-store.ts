import type { PresenceUser } from '@switchboard/protocol';

/** One session's entry in a channel's presence. */
export interface PresenceMember {
  user: string;
  session: string;
  node: string;
  /** When the session connected, ms since the epoch. */
  since: number;
}

/** One session of a user, as `GET /v1/users/{id}` shows it. */
export interface UserSession {
  session: string;
  node: string;
  since: number;
}

/** A session's entry in a channel, as {@link PresenceStore.refresh} takes and returns them. */
export interface PresenceEntry {
  channel: string;
  member: PresenceMember;
}

/** A user whose last session in a channel is gone, as {@link PresenceStore.reap} finds them. */
export interface PresenceLeave {
  channel: string;
  user: string;
}

/**
 * Who is in which channel, per user and per session. `add` and `remove` decide atomically whether
 * the change is the user's first session in the channel (a `join`) or their last (a `leave`), so
 * that two tabs give one `join` and one `leave`, cluster-wide.
 */
export interface PresenceStore {
  /** Adds a session; resolves `true` when it is the user's first session in `channel`. */
  add(channel: string, member: PresenceMember): Promise<boolean>;
  /** Removes a session; resolves `true` when it was the user's last session in `channel`. */
  remove(channel: string, member: PresenceMember): Promise<boolean>;
  /** Users in `channel` with their session counts and nodes. */
  list(channel: string): Promise<PresenceUser[]>;
  /** Live sessions of `user`, on any node (read from the user's personal channel). */
  sessions(user: string): Promise<UserSession[]>;
  /**
   * Users with a session on any node (their personal channel has presence), at most `limit`, in no
   * set order; `more` when there were others. A store with leases may still list a user whose
   * last session crashed, until that lease is reaped.
   */
  online(limit: number): Promise<{ users: string[]; more: boolean }>;
  /**
   * Renews the leases of this node's live sessions; call it for every local entry more often than
   * the lease lasts (e.g. every third of it), in one call (one round trip). Resolves with the
   * entries that were no longer stored: their lease had lapsed and they were reaped (and a `leave`
   * announced), so the caller re-`add`s those whose session is still open. A store without leases
   * (memory) renews nothing and resolves `[]`.
   */
  refresh(entries: PresenceEntry[]): Promise<PresenceEntry[]>;
  /**
   * Removes the sessions whose lease expired at or before `now` (default: the store's clock) and
   * resolves with the users whose last session in a channel went so, for the caller to announce
   * their `leave`. Each is returned exactly once cluster-wide, even when several nodes reap at the
   * same time. A store without leases (memory: sessions go only by `remove`) resolves `[]`.
   */
  reap(now?: number): Promise<PresenceLeave[]>;
  /** True while the store is reachable. */
  readonly ready: boolean;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
