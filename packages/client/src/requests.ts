import type { ReplyFrame } from '@switchboard/protocol';
import { SwitchboardError, type ClientErrorCode, type ClientState } from './types.js';

/** A successful reply. */
export type OkReply = ReplyFrame & { ok: true };

/** What the request table needs of the connection: whether frames can go out now, and a way to send them. */
export interface RequestLink {
  readonly state: ClientState;
  send(data: string): void;
}

/** Limits of {@link RequestTable}. */
export interface RequestLimits {
  /** Requests held while not connected; one more is rejected with `queue_full`. */
  maxQueue: number;
  /** A request without a reply for this long, while connected, is rejected with `timeout`. */
  timeoutMs: number;
}

interface Pending {
  id: number;
  frame: Record<string, unknown>;
  resolve: (reply: OkReply) => void;
  reject: (err: SwitchboardError) => void;
  /** Sends and publishes carry an idempotency key, so they are safe to resend after a reconnect. */
  retry: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

const fail = (code: ClientErrorCode, message: string) => new SwitchboardError(code, message);

/**
 * The requests of one client: those written and waiting for their reply (by frame id), and the
 * offline queue of those waiting for a connection, with their timeouts and the resend rule.
 */
export class RequestTable {
  private readonly pending = new Map<number, Pending>();
  private queue: Pending[] = [];
  private nextId = 1;
  /** Makes idempotency keys unique across clients of one user, and across page loads. */
  private readonly keyPrefix = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);

  constructor(
    private readonly link: RequestLink,
    private readonly limits: RequestLimits,
  ) {}

  /**
   * Sends `frame` with an id now, or queues it until connected; resolves with its successful
   * reply. An `idempotent` frame gets a key and is resent after a lost connection; others fail.
   */
  request(frame: Record<string, unknown>, idempotent: boolean): Promise<OkReply> {
    return new Promise((resolve, reject) => {
      if (this.link.state === 'closed') return reject(fail('closed', 'client is closed: call connect() first'));
      const id = this.nextId++;
      const sent = idempotent ? { ...frame, key: `${this.keyPrefix}-${id}` } : frame;
      const entry: Pending = { id, frame: sent, resolve, reject, retry: idempotent };
      if (this.link.state === 'connected') return this.write(entry);
      if (this.queue.length >= this.limits.maxQueue) {
        return reject(fail('queue_full', `offline queue is full (${this.limits.maxQueue})`));
      }
      this.queue.push(entry);
    });
  }

  /** Settles the request a `reply` frame answers (late replies of timed-out requests are ignored). */
  settle(reply: ReplyFrame): void {
    const entry = this.pending.get(reply.id as number);
    if (!entry) return;
    this.pending.delete(entry.id);
    clearTimeout(entry.timer);
    if (reply.ok) entry.resolve(reply);
    else entry.reject(new SwitchboardError(reply.error.code, reply.error.message));
  }

  /** Writes the offline queue, in order, once connected. */
  flush(): void {
    const queued = this.queue;
    this.queue = [];
    for (const entry of queued) this.write(entry);
  }

  /** The socket is gone: unanswered sends go back to the front of the queue (their keys make a resend safe). */
  lost(): void {
    const unanswered = [...this.pending.values()].sort((a, b) => a.id - b.id);
    this.pending.clear();
    const resend: Pending[] = [];
    for (const entry of unanswered) {
      clearTimeout(entry.timer);
      if (entry.retry) resend.push(entry);
      else entry.reject(fail('disconnected', 'connection lost before the reply'));
    }
    this.queue = [...resend, ...this.queue];
  }

  /** The client closed for good: every queued request is rejected with `closed`. */
  close(message: string): void {
    for (const entry of this.queue) entry.reject(fail('closed', message));
    this.queue = [];
  }

  private write(entry: Pending): void {
    this.pending.set(entry.id, entry);
    entry.timer = setTimeout(() => {
      this.pending.delete(entry.id);
      entry.reject(fail('timeout', `no reply within ${this.limits.timeoutMs} ms`));
    }, this.limits.timeoutMs);
    this.link.send(JSON.stringify({ ...entry.frame, id: entry.id }));
  }
}
