import type { Logger } from 'pino';
import type { NodeMetrics } from '../metrics.js';
import type { SessionRef } from '../node-context.js';
import { SmallSet } from '../small-collections.js';
import type { Session } from './session.js';

/** Sessions pinged per event-loop turn by the heartbeat sweep. */
const HEARTBEAT_SLICE = 500;

/** The node's open sessions, by user too, and the heartbeat that drops dead peers. */
export class SessionTable implements Iterable<Session> {
  private readonly sessions = new Set<Session>();
  /** A user's sessions here: most users have one. */
  private readonly byUser = new Map<string, SmallSet<Session>>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
  ) {}

  /** Distinct users with a session here. */
  get users(): number {
    return this.byUser.size;
  }

  get size(): number {
    return this.sessions.size;
  }

  [Symbol.iterator](): Iterator<Session> {
    return this.sessions[Symbol.iterator]();
  }

  has(session: SessionRef): boolean {
    return this.sessions.has(session as Session);
  }

  /** Sessions `user` has open on this node. */
  countFor(user: string): number {
    return this.byUser.get(user)?.size ?? 0;
  }

  add(session: Session): void {
    this.sessions.add(session);
    let mine = this.byUser.get(session.user);
    if (!mine) this.byUser.set(session.user, (mine = new SmallSet()));
    mine.add(session);
    this.metrics.sessions.set(this.sessions.size);
  }

  /** Removes `session`; false when it was not in the table. */
  remove(session: SessionRef): boolean {
    if (!this.sessions.delete(session as Session)) return false;
    const mine = this.byUser.get(session.user);
    mine?.delete(session as Session);
    if (mine?.size === 0) this.byUser.delete(session.user);
    this.metrics.sessions.set(this.sessions.size);
    return true;
  }

  /** Pings every session each `intervalMs`; one that did not answer the last ping is dropped. */
  startHeartbeat(intervalMs: number): void {
    this.heartbeat = setInterval(() => this.sweep(), intervalMs);
    this.heartbeat.unref();
  }

  stopHeartbeat(): void {
    clearInterval(this.heartbeat);
  }

  /**
   * Drops peers that did not answer the last ping and pings the others. Done in slices with the
   * event loop free in between, so that pinging 10,000 sessions does not hold up message delivery.
   */
  private sweep(): void {
    const sessions = [...this.sessions];
    const slice = (from: number): void => {
      const end = Math.min(from + HEARTBEAT_SLICE, sessions.length);
      for (let i = from; i < end; i++) {
        const session = sessions[i]!;
        if (!this.sessions.has(session)) continue;
        if (!session.alive) {
          this.log.debug({ session: session.id }, 'peer missed heartbeat');
          session.terminate();
          continue;
        }
        session.alive = false;
        session.ping();
      }
      if (end < sessions.length) setImmediate(slice, end);
    };
    slice(0);
  }
}
