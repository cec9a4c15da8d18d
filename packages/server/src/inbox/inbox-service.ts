import type { Logger } from 'pino';
import { userChannel, type StreamPosition } from '@switchboard/protocol';
import { SwitchboardError } from '../errors.js';
import type { History } from '../history/history.js';
import type { NodeMetrics } from '../metrics.js';
import { RECEIPT_TOPIC, type Publication, type ReceiptData } from '../publication.js';
import type { PublicationPath } from '../publish/publication-path.js';
import type { AckStore } from './acks.js';

/** What an {@link InboxService} works with. */
export interface InboxDeps {
  history: History;
  acks: AckStore;
  /** How receipts leave: appended to the sender's inbox, then published (never the atomic Redis path, which writes `message` frames). */
  receipts: PublicationPath;
  /** Messages handed to a session per read while it catches up (the rest follow, page after page). */
  pageSize: number;
  metrics: NodeMetrics;
  log: Logger;
}

/** Where a new session of a user starts in its inbox, and the first page of what it has not acked. */
export interface InboxStart {
  /** The inbox's epoch and latest offset. */
  position: StreamPosition;
  /** The user's acked offset in this epoch (0 when none, or acked in an older epoch). */
  acked: number;
  replay: Publication[];
  /** More unacked messages follow `replay`. */
  more: boolean;
}

/** `GET /v1/inbox/{user}`. */
export interface InboxSummary {
  user: string;
  channel: string;
  epoch: string;
  offset: number;
  acked: number;
  unacked: number;
}

/**
 * The inbox (`SWITCHBOARD_INBOX=on`): each `user:` channel is its user's inbox, with a cumulative
 * acked position per user beside it in the history store. A session without a position for its
 * own channel is handed what its user has not acked; an ack past a message sent with
 * `receipt: true` puts a receipt in the sender's inbox, once.
 */
export class InboxService {
  constructor(private readonly deps: InboxDeps) {}

  /** The acked position of `channel`, as stored (any epoch). */
  acked(channel: string): Promise<StreamPosition | undefined> {
    return this.unavailableOnFailure(() => this.deps.acks.acked(channel), 'inbox acks unavailable');
  }

  /** The acked offset of `channel` in `epoch` (0 when none, or of another epoch). */
  async ackedIn(channel: string, epoch: string): Promise<number> {
    const held = await this.acked(channel);
    return held && held.epoch === epoch ? held.offset : 0;
  }

  /** Where a session that has no position for its own `channel` starts: after the acked offset. */
  async start(channel: string): Promise<InboxStart> {
    const { history, acks, pageSize, metrics } = this.deps;
    return this.unavailableOnFailure(async () => {
      const held = await acks.acked(channel);
      let page = await history.read(channel, held?.offset ?? 0, pageSize);
      let acked = held?.offset ?? 0;
      if (held && held.epoch !== page.epoch) {
        // Acked in an epoch the inbox no longer has: everything it keeps now is unacked.
        acked = 0;
        page = await history.read(channel, 0, pageSize);
      }
      acked = Math.min(acked, page.offset);
      metrics.inboxUnackedAtConnect.observe(page.offset - acked);
      return {
        position: { epoch: page.epoch, offset: page.offset },
        acked,
        replay: page.publications,
        more: hasMore(page.publications, page.offset, pageSize),
      };
    }, 'inbox unavailable');
  }

  /**
   * `user` has handled everything in its inbox up to `position`. Receipts go out first, then the
   * ack is stored: a failure between the two leaves the ack where it was, and the client's retry
   * sends no receipt twice (each has an idempotency key).
   * @throws SwitchboardError `forbidden` (another user's inbox), `bad_frame` (another epoch, past
   * the latest offset), `unavailable`.
   */
  async ack(user: string, channel: string, position: StreamPosition): Promise<{ channel: string; epoch: string; acked: number }> {
    const { history, acks, metrics } = this.deps;
    if (channel !== userChannel(user)) {
      metrics.inboxAcks.inc({ result: 'rejected' });
      throw new SwitchboardError('ERR_FORBIDDEN', `only the inbox's own user may ack ${channel.slice(0, 140)}`);
    }
    // Both reads at once: one round trip with Redis (pipelined), two in parallel with PostgreSQL.
    const [current, held] = await Promise.all([
      this.unavailableOnFailure(() => history.position(channel), 'inbox unavailable'),
      this.acked(channel),
    ]);
    if (position.epoch !== current.epoch || position.offset > current.offset) {
      metrics.inboxAcks.inc({ result: 'rejected' });
      throw new SwitchboardError(
        'ERR_BAD_FRAME',
        position.epoch !== current.epoch
          ? `epoch ${position.epoch.slice(0, 64)} is not the inbox's epoch ${current.epoch}`
          : `offset ${position.offset} is past the inbox's latest offset ${current.offset}`,
      );
    }
    const from = held && held.epoch === position.epoch ? held.offset : 0;
    if (position.offset <= from) {
      metrics.inboxAcks.inc({ result: 'unchanged' });
      return { channel, epoch: position.epoch, acked: from };
    }
    await this.sendReceipts(user, channel, position.epoch, from, position.offset);
    await this.unavailableOnFailure(() => acks.advance(channel, position), 'inbox acks unavailable');
    metrics.inboxAcks.inc({ result: 'moved' });
    return { channel, epoch: position.epoch, acked: position.offset };
  }

  /** What `GET /v1/inbox/{user}` answers. */
  async summary(user: string): Promise<InboxSummary> {
    const channel = userChannel(user);
    const position = await this.unavailableOnFailure(() => this.deps.history.position(channel), 'inbox unavailable');
    const acked = Math.min(await this.ackedIn(channel, position.epoch), position.offset);
    return { user, channel, epoch: position.epoch, offset: position.offset, acked, unacked: position.offset - acked };
  }

  /** A receipt, in its sender's inbox, for every message in (`from`, `to`] of `channel` that asked for one. */
  private async sendReceipts(user: string, channel: string, epoch: string, from: number, to: number): Promise<void> {
    const { history, receipts, pageSize, metrics } = this.deps;
    let since = from;
    while (since < to) {
      const page = await this.unavailableOnFailure(() => history.read(channel, since, Math.min(pageSize, to - since)), 'inbox unavailable');
      if (page.epoch !== epoch || page.publications.length === 0) return;
      for (const pub of page.publications) {
        if (pub.offset > to) return;
        since = pub.offset;
        if (!pub.receipt || pub.from === null) continue;
        const data: ReceiptData = { channel, epoch, offset: pub.offset };
        await this.unavailableOnFailure(
          () =>
            receipts.publish(
              userChannel(pub.from!),
              { from: user, topic: RECEIPT_TOPIC, data, ts: Date.now() },
              `receipt:${channel}:${epoch}:${pub.offset}`,
            ),
          'receipt could not be delivered: the ack was not stored, send it again',
        );
        metrics.inboxReceipts.inc();
      }
    }
  }

  private async unavailableOnFailure<T>(call: () => Promise<T>, message: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof SwitchboardError) throw err;
      this.deps.metrics.engineErrors.inc({ component: 'inbox' });
      this.deps.log.warn({ err }, message);
      throw new SwitchboardError('ERR_UNAVAILABLE', message, { cause: err });
    }
  }
}

function hasMore(publications: readonly Publication[], latest: number, pageSize: number): boolean {
  const last = publications[publications.length - 1];
  return publications.length >= pageSize && last !== undefined && last.offset < latest;
}
