import type { Logger } from 'pino';
import type { Broker, BrokerMessage } from './broker/broker.js';
import type { NodeMetrics } from './metrics.js';

/** What the hub needs of a session. */
export interface HubMember {
  readonly user: string;
  /** A publication for a channel the member is in; its `frame` is encoded once for all members. */
  deliver(channel: string, message: Extract<BrokerMessage, { kind: 'message' }>): void;
  /** A frame to write as is (presence events). */
  sendRaw(frame: string | Buffer): void;
  /** Close the session (cluster-wide disconnect). */
  close(code: number, reason: string): void;
}

const TS_FIELD = Buffer.from('"ts":');

interface ChannelEntry {
  members: Set<HubMember>;
  /** Serialises broker subscribe/unsubscribe for the channel. */
  op: Promise<void>;
  subscribed: boolean;
}

/**
 * The node's local channel table: which sessions are in which channel. It reference-counts broker
 * subscriptions (interest routing: the node receives only channels with a local subscriber) and
 * fans out what the broker delivers: the same serialised frame to every local recipient.
 */
export class Hub {
  private readonly channels = new Map<string, ChannelEntry>();

  constructor(
    private readonly broker: Broker,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
  ) {}

  /** Channels with a local member. */
  get size(): number {
    return this.channels.size;
  }

  /** Adds `member` to `channel`; resolves once the broker delivers the channel to this node. */
  async add(channel: string, member: HubMember): Promise<void> {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { members: new Set(), op: Promise.resolve(), subscribed: false };
      this.channels.set(channel, entry);
      this.metrics.localChannels.set(this.channels.size);
    }
    entry.members.add(member);
    const e = entry;
    if (!e.subscribed) {
      // After a failed subscribe (broker down) the chain goes on: the next add tries again.
      e.op = e.op
        .catch(() => undefined)
        .then(async () => {
          if (e.subscribed || e.members.size === 0) return;
          await this.broker.subscribe(channel);
          e.subscribed = true;
        });
    }
    await e.op;
  }

  /** Removes `member` from `channel`; the broker subscription goes when the last member leaves. */
  remove(channel: string, member: HubMember): void {
    const entry = this.channels.get(channel);
    if (!entry || !entry.members.delete(member) || entry.members.size > 0) return;
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
   * What the broker delivered: fanned out to the channel's local members, every socket getting
   * the same bytes. One member that throws does not keep the message from the others.
   */
  readonly onBrokerMessage = (channel: string, message: BrokerMessage): void => {
    const entry = this.channels.get(channel);
    if (!entry || entry.members.size === 0) return;
    switch (message.kind) {
      case 'message':
        for (const member of entry.members) {
          try {
            member.deliver(channel, message);
          } catch (err) {
            this.memberFailed(err, channel);
          }
        }
        this.observeLag(message.frame);
        return;
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

  private memberFailed(err: unknown, channel: string): void {
    this.metrics.engineErrors.inc({ component: 'hub' });
    this.log.error({ err, channel }, 'delivery to a session failed');
  }
}
