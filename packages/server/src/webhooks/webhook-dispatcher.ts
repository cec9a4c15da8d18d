import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { StreamPosition } from '@switchboard/protocol';
import type { AckStore } from '../inbox/acks.js';
import type { NodeMetrics } from '../metrics.js';
import type { Publication } from '../publication.js';
import type { ClaimedEvent, WebhookEvent, WebhookOutbox } from './outbox.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';

/** What a {@link WebhookDispatcher} works with. */
export interface WebhookDispatcherDeps {
  url: string;
  /** Signs every request. Never logged. */
  secret: string;
  outbox: WebhookOutbox;
  /** With the inbox on: `message.unacked` is checked against the acks before it is sent. */
  acks: AckStore | undefined;
  /** A message of an inbox unacked for this long is announced. */
  unackedAfterMs: number;
  /** A POST without an answer for this long counts as failed. */
  timeoutMs: number;
  /** Events queued at most cluster-wide; past it new ones are dropped (logged and counted). */
  maxQueue: number;
  nodeId: string;
  metrics: NodeMetrics;
  log: Logger;
  /** How often the node looks for due events. @default 250 */
  pollMs?: number;
}

/** Attempts per event before it is given up (about an hour of backoff). */
export const MAX_ATTEMPTS = 12;
const MAX_BACKOFF_MS = 300_000;
const CLAIM_BATCH = 20;

/** The delay before attempt `n + 1` after `n` failed ones: 1 s, 2 s, 4 s … 5 min, ±20 %. */
export function webhookBackoff(failed: number, random = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, failed - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** A URL without user info, for logs. */
function shown(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1[REDACTED]@');
}

/**
 * Webhooks (`SWITCHBOARD_WEBHOOK_URL`): queues `user.online`, `user.offline` and
 * `message.unacked` events in the cluster's outbox and delivers them, signed. Every node runs
 * one; each event is claimed by one node at a time (a lease in the store), so it is sent by one
 * node, and a node that dies lets its leases lapse for another to take over. A failed POST (a
 * non-2xx answer, a timeout, a refused connection) is retried with backoff under the same `id`.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: WebhookDispatcherDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.deps.pollMs ?? 250);
    this.timer.unref();
  }

  /** Stops claiming; resolves once the deliveries in flight are settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }

  /** A user's first session cluster-wide came (`online`) or its last went (`offline`). */
  userPresence(user: string, event: 'online' | 'offline'): Promise<void> {
    const ts = Date.now();
    const fields = event === 'online' ? { user, node: this.deps.nodeId } : { user };
    return this.queue({ id: randomUUID(), type: `user.${event}`, ts, ...fields }, ts);
  }

  /** A message was put in an inbox: announced if it is still unacked `unackedAfterMs` later. */
  inboxMessage(pub: Publication): Promise<void> {
    const ts = pub.ts + this.deps.unackedAfterMs;
    const event: WebhookEvent = {
      id: `unacked:${pub.channel}:${pub.epoch}:${pub.offset}`,
      type: 'message.unacked',
      ts,
      user: pub.channel.slice('user:'.length),
      channel: pub.channel,
      epoch: pub.epoch,
      offset: pub.offset,
      from: pub.from,
      topic: pub.topic,
    };
    return this.queue(event, ts);
  }

  private async queue(event: WebhookEvent, dueAt: number): Promise<void> {
    const { metrics, log } = this.deps;
    try {
      const result = await this.deps.outbox.add(event, dueAt, this.deps.maxQueue);
      if (result === 'full') {
        metrics.webhookEvents.inc({ type: event.type, outcome: 'dropped' });
        log.error({ type: event.type, id: event.id, max: this.deps.maxQueue }, 'webhook queue full: event dropped');
      }
    } catch (err) {
      metrics.webhookEvents.inc({ type: event.type, outcome: 'dropped' });
      metrics.engineErrors.inc({ component: 'webhooks' });
      log.error({ err, type: event.type, id: event.id }, 'webhook event could not be queued: dropped');
    }
  }

  /** Claims what is due and delivers it; goes on at once while full batches come. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      for (;;) {
        const now = Date.now();
        // The lease outlasts a delivery's timeout, so a live node never loses an event it is sending.
        const claimed = await this.deps.outbox.claim(now, now + this.deps.timeoutMs * 3 + 1000, CLAIM_BATCH);
        await Promise.all(claimed.map((c) => this.track(this.handle(c))));
        if (claimed.length < CLAIM_BATCH || this.stopped) break;
      }
    } catch (err) {
      this.deps.metrics.engineErrors.inc({ component: 'webhooks' });
      this.deps.log.warn({ err }, 'webhook queue unreachable; retried at the next poll');
    } finally {
      this.polling = false;
    }
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private async handle(claimed: ClaimedEvent): Promise<void> {
    const { outbox, metrics, log } = this.deps;
    const { event } = claimed;
    if (event.type === 'message.unacked' && (await this.acked(event))) {
      metrics.webhookEvents.inc({ type: event.type, outcome: 'skipped' });
      return outbox.done(event.id);
    }
    const failure = await this.post(event);
    if (failure === undefined) {
      metrics.webhookEvents.inc({ type: event.type, outcome: 'delivered' });
      return outbox.done(event.id);
    }
    const attempts = claimed.attempts + 1;
    if (attempts >= MAX_ATTEMPTS) {
      metrics.webhookEvents.inc({ type: event.type, outcome: 'gave_up' });
      log.error({ type: event.type, id: event.id, attempts, failure, url: shown(this.deps.url) }, 'webhook given up after every retry');
      return outbox.done(event.id);
    }
    metrics.webhookEvents.inc({ type: event.type, outcome: 'failed' });
    const delay = webhookBackoff(attempts);
    log.warn({ type: event.type, id: event.id, attempts, failure, retryInMs: delay, url: shown(this.deps.url) }, 'webhook delivery failed');
    await outbox.retry(claimed, attempts, Date.now() + delay);
  }

  /** True when the inbox's acked position covers the event's message (or the inbox started again). */
  private async acked(event: WebhookEvent): Promise<boolean> {
    if (!this.deps.acks) return false;
    const at = event as WebhookEvent & StreamPosition & { channel: string };
    const held = await this.deps.acks.acked(at.channel);
    return held !== undefined && held.epoch === at.epoch && held.offset >= at.offset;
  }

  /** POSTs the event; resolves with why it failed, or undefined on a 2xx. */
  private async post(event: WebhookEvent): Promise<string | undefined> {
    const body = JSON.stringify(event);
    const end = this.deps.metrics.webhookLatency.startTimer();
    try {
      const res = await fetch(this.deps.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': `switchboard-webhooks (node ${this.deps.nodeId})`,
          [SIGNATURE_HEADER]: signWebhook(this.deps.secret, body),
        },
        body,
        signal: AbortSignal.timeout(this.deps.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      return e.name === 'TimeoutError' ? `no answer within ${this.deps.timeoutMs} ms` : (e.cause?.code ?? e.message);
    } finally {
      end();
    }
  }
}
