import type { StreamPosition } from '@switchboard/protocol';
import { messageFrame, type Publication } from '../publication.js';

/**
 * What a channel stream needs of its session. One sink serves all of a session's streams (the
 * session itself), so a stream costs no closures of its own: an idle connection holds several.
 */
export interface StreamSink {
  /** Writes a `message` frame to the client. */
  writeMessage(frame: Buffer): void;
  /** Reads what the client missed on `channel` after `since` from history (gap repair). */
  repair(channel: string, since: StreamPosition): Promise<Publication[]>;
  /** The next page of a replay (a recovery, an inbox catch-up) after `since`, and whether more follow. */
  nextPage(channel: string, since: StreamPosition): Promise<{ publications: Publication[]; more: boolean }>;
  /** True when the socket holds enough unsent: a replay waits for {@link roomy} before writing more. */
  congested(): boolean;
  /** Resolves once the socket has room again (or the session is gone). */
  roomy(): Promise<void>;
  /** Too much is buffered while waiting for history: the session is a slow consumer. */
  overflow(): void;
  /** A live gap was found and is being repaired (for the metric). */
  gap(): void;
}

interface Pending {
  epoch: string;
  offset: number;
  frame: Buffer;
}

/**
 * One session's view of one channel: the exactly-once stream. It guarantees that the client sees
 * every offset once, in order, whatever the broker does — replay and live overlapping on attach,
 * a publication the broker lost (a gap, filled from history before going on), repeats (dropped),
 * and an epoch change (the stream starts again from the new epoch's first offset, from history
 * when the broker lost that one too).
 *
 * Life: created buffering (live publications wait from the moment the hub has the session), then
 * {@link begin} sets where delivery starts, {@link drain} writes the replay and the buffer and goes
 * live; from then on {@link live} writes, drops or repairs each publication.
 */
export class ChannelStream {
  private epoch = '';
  private offset = 0;
  /** Live publications waiting for history (attach or repair); `null` while live. */
  private pending: Pending[] | null = [];
  private stopped = false;

  constructor(
    private readonly channel: string,
    private readonly sink: StreamSink,
    /** Publications buffered at most before the session is cut as a slow consumer. */
    private readonly maxPending: number,
  ) {}

  /** The last position delivered (or, before that, where delivery starts). */
  get position(): StreamPosition {
    return { epoch: this.epoch, offset: this.offset };
  }

  /** Sets where delivery starts: after `offset` of `epoch`. */
  begin(position: StreamPosition): void {
    this.epoch = position.epoch;
    this.offset = position.offset;
  }

  /**
   * Writes `replay`, then what was buffered meanwhile, skipping what was already written; then
   * live. With `more` (a replay longer than a page), live publications stay buffered while
   * the next page is read, and so on until the last.
   */
  drain(replay: readonly Publication[], more = false): void {
    if (this.stopped) return;
    // Live publications keep waiting in `pending` until the whole replay is written.
    const pending = (this.pending ??= []);
    for (let i = 0; i < replay.length; i++) {
      if (i > 0 && this.sink.congested()) {
        // A long replay goes as fast as the client reads, never past the outbound limit.
        const rest = replay.slice(i);
        void this.sink.roomy().then(() => this.drain(rest, more));
        return;
      }
      const pub = replay[i]!;
      this.write(pub.epoch, pub.offset, Buffer.from(messageFrame(pub)));
    }
    if (more) {
      this.sink.nextPage(this.channel, this.position).then(
        (page) => this.drain(page.publications, page.more),
        // History unreachable: go on with what arrived (the rest of an inbox stays unacked).
        () => this.drain([]),
      );
      return;
    }
    this.pending = null;
    for (const p of pending) this.write(p.epoch, p.offset, p.frame);
  }

  /** A live publication from the broker. */
  live(epoch: string, offset: number, frame: Buffer): void {
    if (this.stopped) return;
    if (this.pending) {
      this.pending.push({ epoch, offset, frame });
      if (this.pending.length > this.maxPending) this.sink.overflow();
      return;
    }
    if (epoch === this.epoch && offset > this.offset + 1) {
      // The broker lost what came before (it delivers at most once): fill the gap from history
      // first, so the client still sees every offset once, in order.
      this.repair({ epoch, offset, frame });
      return;
    }
    if (epoch !== this.epoch && offset > 1) {
      // A new epoch (history lost, Redis restarted empty, say) whose first publications the
      // broker lost, as it does while its link comes back: they are in the new history.
      this.repair({ epoch, offset, frame }, { epoch, offset: 0 });
      return;
    }
    this.write(epoch, offset, frame);
  }

  /**
   * The channel's latest position in history, read after the broker's link came back: a
   * publication the broker lost while the link was down is otherwise noticed only when the next
   * one arrives (a gap), and on a quiet channel that may be never. Behind it, the stream repairs
   * from history as for a gap; on a new epoch (the history was lost too), from that epoch's start;
   * while a replay or a repair is going on, that one reads it anyway.
   */
  catchUp(latest: StreamPosition): void {
    if (this.stopped || this.pending) return;
    if (latest.epoch === this.epoch ? latest.offset > this.offset : latest.offset > 0)
      this.repair(undefined, latest.epoch === this.epoch ? this.position : { epoch: latest.epoch, offset: 0 });
  }

  /** The session left the channel: nothing more is written, a repair in flight is dropped. */
  stop(): void {
    this.stopped = true;
    this.pending = null;
  }

  /** Reads from history what follows `since`, holding live publications (`first` among them) until it is written. */
  private repair(first?: Pending, since = this.position): void {
    this.pending = first ? [first] : [];
    this.sink.gap();
    this.sink.repair(this.channel, since).then(
      (replay) => this.drain(replay),
      // History unreachable: go on with what arrived; the hole stays (the sink logs why).
      () => this.drain([]),
    );
  }

  private write(epoch: string, offset: number, frame: Buffer): void {
    if (epoch === this.epoch && offset <= this.offset) return; // already delivered (replay and live overlap, a repeat)
    this.epoch = epoch;
    this.offset = offset;
    this.sink.writeMessage(frame);
  }
}
