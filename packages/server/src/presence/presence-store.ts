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
  /** True while the store is reachable. */
  readonly ready: boolean;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
