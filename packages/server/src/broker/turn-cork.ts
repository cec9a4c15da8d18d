import type { Socket } from 'node:net';

/**
 * Holds a socket's writes until the end of the current turn, so that what one turn writes leaves in
 * one write (one system call, a few TCP segments) instead of one per message. On loopback a write
 * also costs the sender the receiver's TCP work, and the RabbitMQ client writes each publication on
 * its own: on a node publishing to RabbitMQ, writes were the largest cost.
 *
 * The socket is the client's (`socket()` finds the current one: it changes with every reconnect).
 */
export class TurnCork {
  /** Corked by this, until the end of the turn. */
  private held = false;
  /** Sockets that cork when they drain (see `onDrain`). */
  private readonly hooked = new WeakSet<Socket>();

  constructor(private readonly socket: () => Socket | undefined) {}

  /** True until the end of a turn in which `cork` held the socket. */
  get corked(): boolean {
    return this.held;
  }

  /** Holds the socket's writes until the end of this turn (once per turn; a no-op on a socket someone else corked). */
  cork(): void {
    if (this.held) return;
    const socket = this.socket();
    // Corked by its owner (the RabbitMQ client does when the broker blocks the connection): not ours to undo.
    if (!socket || socket.writableCorked > 0) return;
    socket.cork();
    this.held = true;
    process.nextTick(() => {
      this.held = false;
      socket.uncork();
    });
  }

  /**
   * Corks the socket when it drains too, before its owner's listener writes what waited for the
   * drain (at saturation, most writes). Call once the owner has its listener on the current socket.
   */
  onDrain(): void {
    const socket = this.socket();
    if (!socket || this.hooked.has(socket)) return;
    this.hooked.add(socket);
    socket.prependListener('drain', () => this.cork());
  }
}
