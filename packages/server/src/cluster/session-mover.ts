import type { Logger } from 'pino';
import { CloseCode } from '@switchboard/protocol';
import { HashRing } from '../registry/hash-ring.js';

/** A session as the mover sees it. */
export interface MovableSession {
  readonly user: string;
  close(code: number, reason: string): void;
}

/** What a {@link SessionMover} works with. */
export interface SessionMoverDeps {
  nodeId: string;
  /** Moves are spread at random over this window, so the new owner is not stampeded. */
  moveWindowMs: number;
  log: Logger;
  sessions: () => Iterable<MovableSession>;
}

/**
 * Hash routing: when the ring changes, the sessions whose user now belongs to another node are
 * closed with 4000 (moved) at random moments over the window, and reconnect (through the gateway)
 * to their new owner, where they resume. Sessions whose owner did not change are not touched;
 * neither is anything when the ring is first learnt.
 */
export class SessionMover {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: SessionMoverDeps) {}

  /** The ring changed from `before` to `after`. */
  move(before: HashRing, after: HashRing): void {
    if (before.empty || after.empty) return;
    const { nodeId, moveWindowMs, log } = this.deps;
    let moved = 0;
    for (const session of this.deps.sessions()) {
      const owner = after.nodeFor(session.user);
      if (owner === nodeId || !HashRing.moved(before, after, session.user)) continue;
      moved++;
      const timer = setTimeout(
        () => {
          this.timers.delete(timer);
          session.close(CloseCode.MOVED, `moved to ${owner}`);
        },
        Math.floor(Math.random() * moveWindowMs),
      );
      timer.unref();
      this.timers.add(timer);
    }
    if (moved > 0) log.info({ moved, windowMs: moveWindowMs }, 'moving sessions to their new owners');
  }

  /** Cancels the moves not done yet. */
  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
