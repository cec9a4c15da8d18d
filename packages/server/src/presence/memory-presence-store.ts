import { userChannel, type PresenceUser } from '@switchboard/protocol';
import { SmallMap } from '../small-collections.js';
import type { PresenceEntry, PresenceLeave, PresenceMember, PresenceStore, UserSession } from './presence-store.js';

const USER_PREFIX = 'user:';

/**
 * A user's sessions in one channel: the member itself while there is one (most users, in their
 * own channel always), a map by session id from the second on — an idle connection keeps no map.
 */
type Sessions = PresenceMember | Map<string, PresenceMember>;

function count(sessions: Sessions): number {
  return sessions instanceof Map ? sessions.size : 1;
}

function members(sessions: Sessions): Iterable<PresenceMember> {
  return sessions instanceof Map ? sessions.values() : [sessions];
}

/** Presence in process memory. Several nodes in one process may share one instance. */
export class MemoryPresenceStore implements PresenceStore {
  /** channel → user → that user's sessions there (a user's own channel: one user) */
  private readonly channels = new Map<string, SmallMap<string, Sessions>>();
  private closed = false;

  get ready(): boolean {
    return !this.closed;
  }

  async add(channel: string, member: PresenceMember): Promise<boolean> {
    let users = this.channels.get(channel);
    if (!users) this.channels.set(channel, (users = new SmallMap()));
    const sessions = users.get(member.user);
    if (!sessions) {
      users.set(member.user, member);
      return true;
    }
    if (sessions instanceof Map) sessions.set(member.session, member);
    else if (sessions.session !== member.session)
      users.set(
        member.user,
        new Map([
          [sessions.session, sessions],
          [member.session, member],
        ]),
      );
    else users.set(member.user, member);
    return false;
  }

  async remove(channel: string, member: PresenceMember): Promise<boolean> {
    const users = this.channels.get(channel);
    const sessions = users?.get(member.user);
    if (!users || !sessions) return false;
    if (sessions instanceof Map) {
      if (!sessions.delete(member.session)) return false;
      if (sessions.size > 0) return false;
    } else if (sessions.session !== member.session) return false;
    users.delete(member.user);
    if (users.size === 0) this.channels.delete(channel);
    return true;
  }

  async list(channel: string): Promise<PresenceUser[]> {
    const users = this.channels.get(channel);
    if (!users) return [];
    return [...users].map(([user, sessions]) => ({
      user,
      sessions: count(sessions),
      nodes: [...new Set([...members(sessions)].map((m) => m.node))].sort(),
    }));
  }

  async sessions(user: string): Promise<UserSession[]> {
    const sessions = this.channels.get(userChannel(user))?.get(user);
    if (!sessions) return [];
    return [...members(sessions)].map(({ session, node, since }) => ({ session, node, since }));
  }

  async online(limit: number): Promise<{ users: string[]; more: boolean }> {
    const users: string[] = [];
    for (const [channel, members] of this.channels) {
      if (!channel.startsWith(USER_PREFIX) || members.size === 0) continue;
      if (users.length === limit) return { users, more: true };
      users.push(channel.slice(USER_PREFIX.length));
    }
    return { users, more: false };
  }

  /** Sessions here have no lease: they live until `remove` (the process that holds them is this one). */
  async refresh(_entries: PresenceEntry[]): Promise<PresenceEntry[]> {
    return [];
  }

  /** Nothing expires here, so nothing is reaped. */
  async reap(_now?: number): Promise<PresenceLeave[]> {
    return [];
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
