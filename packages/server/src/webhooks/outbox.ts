/** A webhook event as it is POSTed (`id` stays the same across retries). */
export interface WebhookEvent {
  id: string;
  type: 'user.online' | 'user.offline' | 'message.unacked';
  /** When it happened, ms since the epoch. */
  ts: number;
  [field: string]: unknown;
}

/** An event a node has claimed for delivery, with how many attempts it has had. */
export interface ClaimedEvent {
  event: WebhookEvent;
  attempts: number;
}

/** Outcome of {@link WebhookOutbox.add}. */
export type AddResult = 'added' | 'duplicate' | 'full';

/**
 * The cluster's queue of webhook events, kept in the history store (memory, Redis, PostgreSQL) so
 * that it outlives the node that queued an event. Each event is delivered by one node at a time:
 * `claim` leases the due events to the caller (atomically, whichever node asks); a node that dies
 * holding a lease lets it lapse, and another node claims the event again.
 */
export interface WebhookOutbox {
  /** Queues `event` for delivery from `dueAt` on. An id already queued is not queued twice; past `max` events nothing is queued. */
  add(event: WebhookEvent, dueAt: number, max: number): Promise<AddResult>;
  /** At most `max` events due at `now`, leased to the caller until `leaseUntil`. */
  claim(now: number, leaseUntil: number, max: number): Promise<ClaimedEvent[]>;
  /** Delivered (or given up): forgotten. */
  done(id: string): Promise<void>;
  /** Failed: due again at `dueAt`, with `attempts` recorded. */
  retry(claimed: ClaimedEvent, attempts: number, dueAt: number): Promise<void>;
  /** Events queued (for tests and the dashboard). */
  size(): Promise<number>;
}

/** The outbox in process memory (the memory history's companion): one node, lost on restart. */
export class MemoryOutbox implements WebhookOutbox {
  private readonly entries = new Map<string, { event: WebhookEvent; attempts: number; dueAt: number }>();

  async add(event: WebhookEvent, dueAt: number, max: number): Promise<AddResult> {
    if (this.entries.has(event.id)) return 'duplicate';
    if (this.entries.size >= max) return 'full';
    this.entries.set(event.id, { event, attempts: 0, dueAt });
    return 'added';
  }

  async claim(now: number, leaseUntil: number, max: number): Promise<ClaimedEvent[]> {
    const due = [...this.entries.values()].filter((e) => e.dueAt <= now).sort((a, b) => a.dueAt - b.dueAt);
    return due.slice(0, max).map((e) => {
      e.dueAt = leaseUntil;
      return { event: e.event, attempts: e.attempts };
    });
  }

  async done(id: string): Promise<void> {
    this.entries.delete(id);
  }

  async retry(claimed: ClaimedEvent, attempts: number, dueAt: number): Promise<void> {
    const entry = this.entries.get(claimed.event.id);
    if (!entry) return;
    entry.attempts = attempts;
    entry.dueAt = dueAt;
  }

  async size(): Promise<number> {
    return this.entries.size;
  }
}
