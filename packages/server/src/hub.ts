import type { Logger } from 'pino';
import type { StreamPosition } from '@switchboard/protocol';
import type { Broker, BrokerMessage } from './broker/broker.js';
import type { NodeMetrics } from './metrics.js';
import { SmallSet } from './small-collections.js';

/** What the hub needs of a session. */
export interface HubMember {
  readonly user: string;
  /** A publication for a channel the member is in; its `frame` is encoded once for all members. */
  deliver(channel: string, message: Extract<BrokerMessage, { kind: 'message' }>): void;
  /** A frame to write as is (presence events). */
  sendRaw(frame: string | Buffer): void;
  /** Close the session (cluster-wide disconnect). */
  close(code: number, reason: string): void;
  /** The channel's latest position in history: a member behind it fetches what it missed. */
  catchUp(channel: string, latest: StreamPosition): void;
}

/** Channels whose latest position is read at once by {@link Hub.catchUp}. */
const CATCH_UP_BATCH = 500;

const TS_FIELD = Buffer.from('"ts":');
const SETTLED: Promise<void> = Promise.resolve();

interface ChannelEntry {
  /** Most channels have one: a user's own channel, its one session. */
  members: SmallSet<HubMember>;
  /** Serialises broker subscribe/unsubscribe for the channel. */
  op: Promise<void>;
  subscribed: boolean;
  /** Set while the channel has no member and keeps its subscription for the linger time. */
  linger: NodeJS.Timeout | undefined;
}

/**
 * The node's local channel table: which sessions are in which channel. It reference-counts broker
 * subscriptions (interest routing: the node receives only channels with a local subscriber) and
 * fans out what the broker delivers: the same serialised frame to every local recipient.
 *
 * A channel whose last member left keeps its subscription for `lingerMs` before it is dropped: a
 * session that comes back within it (a dropped connection resuming, a page reloaded, which the
 * gateway's `hash` policy sends to the same node) finds the channel received and costs the broker
 * no unsubscribe and subscribe. On RabbitMQ each is a durable binding change, about a millisecond
 * of the broker's time and serialised; churn of thousands of sessions made them the bottleneck.
 */
export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();
  private stopped = false;

  /** @param lingerMs how long a channel without members stays subscribed (`SWITCHBOARD_CHANNEL_LINGER_MS`); 0 drops it at once. */
  constructor(
    private readonly broker: Broker,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    private readonly lingerMs = 0,
  ) {}

  /** Channels this node receives: those with a local member and those lingering after their last one left. */
  get size(): number {
    return this.channels.size;
  }

  /** Cancels the lingering subscriptions' timers (the node is stopping; closing the broker drops the subscriptions). */
  stop(): void {
    this.stopped = true;
    for (const entry of this.channels.values()) {
      clearTimeout(entry.linger);
      entry.linger = undefined;
    }
  }

  /** Adds `member` to `channel`; resolves once the broker delivers the channel to this node. */
  async add(channel: string, member: HubMember): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { members: new SmallSet(), op: SETTLED, subscribed: false, linger: undefined };
      this.channels.set(channel, entry);
      this.metrics.localChannels.set(this.channels.size);
    } else if (entry.linger) {
      clearTimeout(entry.linger);
      entry.linger = undefined;
    }
    entry.members.add(member);
    const e = entry;
    if (!e.subscribed) {
      // After a failed subscribe (broker down) the chain goes on: the next add tries again.
      const op = (e.op = e.op
        .catch(() => undefined)
        .then(async () => {
          if (e.subscribed || e.members.size === 0) return;
          await this.broker.subscribe(channel);
          e.subscribed = true;
        }));
      await op;
      // Nothing queued after it: the channel keeps a shared settled promise, not its own.
      if (e.op === op) e.op = SETTLED;
      return;
    }
    await e.op;
  }

  /** Removes `member` from `channel`; the broker subscription goes `lingerMs` after the last member left, unless one came back. */
  remove(channel: string, member: HubMember): void {
    const entry = this.channels.get(channel);
    if (!entry || !entry.members.delete(member) || entry.members.size > 0) return;
    if (this.lingerMs > 0 && !this.stopped) {
      clearTimeout(entry.linger);
      entry.linger = setTimeout(() => {
        entry.linger = undefined;
        this.release(channel, entry);
      }, this.lingerMs);
      // A lingering subscription does not keep the process alive.
      entry.linger.unref();
      return;
    }
    this.release(channel, entry);
  }

  /** Drops the broker subscription of `entry`, which has no member, and the entry itself, unless a member came back meanwhile. */
  private release(channel: string, entry: ChannelEntry): void {
    entry.op = entry.op
      .catch(() => undefined)
      .then(async () => {
        if (entry.members.size > 0) return;
        if (entry.subscribed) {
          entry.subscribed = false;
          await this.broker.unsubscribe(channel);
        }
        if (entry.members.size === 0 && this.channels.get(channel) === entry) {
          this.channels.delete(channel);
          this.metrics.localChannels.set(this.channels.size);
        }
      })
      .catch((err: unknown) => {
        this.metrics.engineErrors.inc({ component: 'broker' });
        this.log.warn({ err, channel }, 'broker unsubscribe failed');
      });
  }

  /**
   * After the broker's link came back: reads the latest position of every channel with a local
   * member (`latest`, from history; `CATCH_UP_BATCH` at a time) and hands it to the members, so
   * that what the broker lost meanwhile reaches them without waiting for the channel's next
   * publication. Channels whose read fails are counted, logged in one line and left to gap repair.
   */
  async catchUp(latest: (channel: string) => Promise<StreamPosition>): Promise<void> {
    const channels = [...this.channels].filter(([, entry]) => entry.members.size > 0).map(([channel]) => channel);
    let failed = 0;
    let firstError: unknown;
    for (let i = 0; i < channels.length; i += CATCH_UP_BATCH) {
      await Promise.all(
        channels.slice(i, i + CATCH_UP_BATCH).map(async (channel) => {
          let position: StreamPosition;
          try {
            position = await latest(channel);
          } catch (err) {
            if (failed++ === 0) firstError = err;
            return;
          }
          for (const member of this.channels.get(channel)?.members ?? []) {
            try {
              member.catchUp(channel, position);
            } catch (err) {
              this.memberFailed(err, channel);
            }
          }
        }),
      );
    }
    if (failed > 0) {
      // One line for the lot: history down with the broker would otherwise log every channel.
      this.metrics.engineErrors.inc({ component: 'history' }, failed);
      this.log.warn(
        { err: firstError, channels: failed },
        'catch-up after the broker link came back: history unreachable for these channels; gap repair will fill them',
      );
    }
  }

  /**
   * What the broker delivered: fanned out to the channel's local members, every socket getting
   * the same bytes. One member that throws does not keep the message from the others.
   */
  readonly onBrokerMessage = (channel: string, message: BrokerMessage): void => {
    const entry = this.channels.get(channel);
    if (!entry || entry.members.size === 0) return;
    switch (message.kind) {
      case 'message': {
        // Most channels (a user's own) have one member: no iterator for it.
        const only = entry.members.only;
        if (only) this.deliverTo(only, channel, message);
        else for (const member of entry.members) this.deliverTo(member, channel, message);
        this.observeLag(message.frame);
        return;
      }
      case 'presence': {
        const frame = Buffer.from(JSON.stringify({ type: 'presence', channel, event: message.event, user: message.user, ts: message.ts }));
        for (const member of entry.members) {
          try {
            member.sendRaw(frame);
          } catch (err) {
            this.memberFailed(err, channel);
          }
        }
        return;
      }
      case 'disconnect': {
        for (const member of [...entry.members]) {
          if (member.user === message.user) member.close(message.code, message.reason);
        }
        return;
      }
      default: {
        const never: never = message;
        this.log.error({ message: never }, 'unknown broker message');
      }
    }
  };

  /**
   * The publication's age now that its frame is written to this node's sockets. Its `ts` is read
   * from the frame's tail (the last `"ts":` of a message or receipt frame is its own: `data` comes
   * before it), once per publication, never per socket.
   */
  private observeLag(frame: Buffer): void {
    const at = frame.lastIndexOf(TS_FIELD);
    if (at < 0) return;
    let ts = 0;
    for (let i = at + TS_FIELD.length; i < frame.length; i++) {
      const digit = frame[i]! - 48;
      if (digit < 0 || digit > 9) break;
      ts = ts * 10 + digit;
    }
    if (ts > 0) this.metrics.deliveryLag.observe(Math.max(0, Date.now() - ts) / 1000);
  }

  private deliverTo(member: HubMember, channel: string, message: Extract<BrokerMessage, { kind: 'message' }>): void {
    try {
      member.deliver(channel, message);
    } catch (err) {
      this.memberFailed(err, channel);
    }
  }

  private memberFailed(err: unknown, channel: string): void {
    this.metrics.engineErrors.inc({ component: 'hub' });
    this.log.error({ err, channel }, 'delivery to a session failed');
  }
}
