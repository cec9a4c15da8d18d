import type { Logger } from 'pino';
import { BROADCAST, parseChannel } from '@switchboard/protocol';
import type { Broker } from '../broker/broker.js';
import type { NodeMetrics } from '../metrics.js';
import type { PresenceChanges, SessionRef } from '../node-context.js';
import type { PresenceEntry, PresenceMember, PresenceStore } from './presence-store.js';

/** A session as presence tracking sees it. */
export interface TrackedSession extends SessionRef {
  readonly channelNames: string[];
  has(channel: string): boolean;
}

/** What a {@link PresenceTracker} works with. */
export interface PresenceTrackerDeps {
  store: PresenceStore;
  broker: Broker;
  nodeId: string;
  /** The lease: renewed every third of it. */
  presenceTtlMs: number;
  log: Logger;
  metrics: NodeMetrics;
  /** The node's open sessions now. */
  sessions: () => Iterable<TrackedSession>;
  /** True while `session` is still open. */
  isOpen: (session: TrackedSession) => boolean;
  /** A user's first session cluster-wide arrived, or its last left (webhooks). */
  userPresence?: (user: string, event: 'online' | 'offline') => Promise<void>;
}

/**
 * This node's share of cluster presence: records joins and leaves in order per session, announces
 * a user's first join and last leave of a group, renews the leases of its sessions, and reaps the
 * users of nodes that died (exactly once cluster-wide, through the store).
 */
export class PresenceTracker implements PresenceChanges {
  /** Each session's presence changes still being applied (none for an idle session: its chain is dropped once done). */
  private readonly chains = new WeakMap<SessionRef, Promise<void>>();
  private renewTimer: NodeJS.Timeout | undefined;
  private reapTimer: NodeJS.Timeout | undefined;
  /** A renewal or a reap in flight: the next tick skips it rather than start a second one beside it. */
  private renewing = false;
  private reaping = false;

  constructor(private readonly deps: PresenceTrackerDeps) {}

  join(session: SessionRef, channel: string): Promise<void> {
    return this.change(session, channel, 'join');
  }

  leave(session: SessionRef, channel: string): Promise<void> {
    return this.change(session, channel, 'leave');
  }

  /** A session is gone: leaves every channel it was in; resolves once the store has it. */
  async gone(session: SessionRef, channels: string[]): Promise<void> {
    for (const channel of channels) void this.leave(session, channel);
    await this.chains.get(session);
  }

  /** Starts renewing leases and reaping dead nodes' users. */
  start(): void {
    const tick = Math.max(100, Math.floor(this.deps.presenceTtlMs / 3));
    this.renewTimer = setInterval(() => void this.once('renewing', () => this.renew(), tick), tick);
    this.renewTimer.unref();
    // Nodes reap at different moments, so that one of them finds a lapsed lease soon.
    const reapEvery = tick + Math.floor(Math.random() * tick);
    this.reapTimer = setInterval(() => void this.once('reaping', () => this.reap(), reapEvery), reapEvery);
    this.reapTimer.unref();
  }

  stop(): void {
    clearInterval(this.renewTimer);
    clearInterval(this.reapTimer);
  }

  /** Presence changes of one session are applied in order; a user's first join and last leave are announced. */
  private change(session: SessionRef, channel: string, op: 'join' | 'leave'): Promise<void> {
    const ref = parseChannel(channel);
    if (!ref || ref.kind === 'broadcast') return Promise.resolve();
    const { store, broker } = this.deps;
    const member = this.memberOf(session);
    const previous = this.chains.get(session) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        const changed = op === 'join' ? await store.add(channel, member) : await store.remove(channel, member);
        if (changed && ref.kind === 'group') {
          await broker.publish(channel, { kind: 'presence', channel, event: op, user: session.user, ts: Date.now() });
        }
        // Every session is in its user channel: its first and last session there are the user's, cluster-wide.
        if (changed && ref.kind === 'user') await this.deps.userPresence?.(session.user, op === 'join' ? 'online' : 'offline');
      } catch (err) {
        this.failed(err, `presence ${op} failed`);
      }
      if (this.chains.get(session) === next) this.chains.delete(session);
    });
    this.chains.set(session, next);
    return next;
  }

  /**
   * Runs a periodic job unless its last run is still going: under load a renewal of thousands of
   * entries can outlast its interval, and starting the next beside it doubled the work the node was
   * already behind on. A run that outlasted its interval is logged (leases may lapse meanwhile).
   */
  private async once(flag: 'renewing' | 'reaping', job: () => Promise<void>, intervalMs: number): Promise<void> {
    if (this[flag]) return;
    this[flag] = true;
    const started = Date.now();
    try {
      await job();
    } finally {
      this[flag] = false;
      const tookMs = Date.now() - started;
      if (tookMs > intervalMs)
        this.deps.log.warn({ tookMs, intervalMs }, `presence ${flag === 'renewing' ? 'renewal' : 'reap'} outlasted its interval`);
    }
  }

  /** Renews the leases of this node's presence entries; re-adds those reaped meanwhile (e.g. after an outage). */
  private async renew(): Promise<void> {
    const entries: PresenceEntry[] = [];
    const byId = new Map<string, TrackedSession>();
    for (const session of this.deps.sessions()) {
      byId.set(session.id, session);
      const member = this.memberOf(session);
      for (const channel of session.channelNames) if (channel !== BROADCAST) entries.push({ channel, member });
    }
    if (entries.length === 0) return;
    try {
      const lost = await this.deps.store.refresh(entries);
      for (const { channel, member } of lost) {
        const session = byId.get(member.session);
        if (session && this.deps.isOpen(session) && session.has(channel)) void this.join(session, channel);
      }
    } catch (err) {
      this.failed(err, 'presence refresh failed');
    }
  }

  /** Announces `leave` for users whose last session's lease lapsed (their node died). */
  private async reap(): Promise<void> {
    try {
      for (const { channel, user } of await this.deps.store.reap()) {
        const kind = parseChannel(channel)?.kind;
        if (kind === 'user') await this.deps.userPresence?.(user, 'offline');
        if (kind !== 'group') continue;
        await this.deps.broker.publish(channel, { kind: 'presence', channel, event: 'leave', user, ts: Date.now() });
      }
    } catch (err) {
      this.failed(err, 'presence reap failed');
    }
  }

  private memberOf(session: SessionRef): PresenceMember {
    return { user: session.user, session: session.id, node: this.deps.nodeId, since: session.since };
  }

  private failed(err: unknown, what: string): void {
    this.deps.metrics.engineErrors.inc({ component: 'presence' });
    this.deps.log.error({ err }, what);
  }
}
