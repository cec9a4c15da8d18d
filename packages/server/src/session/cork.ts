import type { Duplex } from 'node:stream';

const corked = new Set<Duplex>();
let scheduled = false;

function uncorkAll(): void {
  scheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/**
 * Holds a socket's writes until the end of this tick, so that every frame written to it during one
 * fan-out (or one burst of broker messages) leaves in a single `writev` instead of one syscall per
 * frame. One `process.nextTick` serves every socket corked in the tick.
 */
export function corkUntilNextTick(socket: Duplex | undefined): void {
  if (!socket || corked.has(socket) || socket.destroyed) return;
  socket.cork();
  corked.add(socket);
  if (!scheduled) {
    scheduled = true;
    process.nextTick(uncorkAll);
  }
}

const batching = new Set<{ flushBatch(): void }>();
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  const sessions = [...batching];
  batching.clear();
  for (const session of sessions) session.flushBatch();
}

/**
 * Flushes a `?batch=1` session's frames once this event-loop turn is over. One `setImmediate`
 * serves every session with frames waiting, rather than one per session: a fan-out to 10,000
 * batching sessions schedules one callback, not 10,000.
 */
export function flushAfterThisLoop(session: { flushBatch(): void }): void {
  batching.add(session);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}
