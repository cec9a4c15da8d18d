import type { StreamPosition } from '@switchboard/protocol';
import { publicationAt, type Publication, type PublicationInput } from '../publication.js';
import type { AppendOnceResult, History, HistoryPage } from './history.js';
import { uniqueIds } from '../ids.js';
import { isUserChannel, retentionClasses, type InboxRetention, type Retention } from './retention.js';

/** Epochs: a new one whenever a channel's stream starts (again), never the same twice. */
const nextEpoch = uniqueIds();

/** Most idempotency keys remembered at once; the oldest are forgotten first. */
const MAX_IDEMPOTENCY_KEYS = 100_000;

/**
 * The entries of every stream nothing was kept in yet (a session's own channel, read for its
 * position at connect): never written to, replaced by an array of the stream's own at the first.
 */
const NO_ENTRIES: Publication[] = Object.freeze([]) as unknown as Publication[];

/** Options of {@link MemoryHistory}. */
export interface MemoryHistoryOptions {
  /** Publications kept per channel. @default 200 */
  historySize: number;
  /** Age after which a publication is dropped. @default 300_000 (5 minutes) */
  historyTtlMs: number;
  /** A channel with no publication for this long forgets its epoch and offset. @default 86_400_000 (24 h) */
  historyMetaTtlMs: number;
  /** With the inbox on: what `user:` channels keep instead. */
  inbox?: InboxRetention | undefined;
  /** How long an idempotency key is remembered. @default 300_000 (5 minutes) */
  idempotencyWindowMs?: number;
  /** Clock, replaceable in tests. @default Date.now */
  now?: () => number;
}

interface Stream {
  epoch: string;
  offset: number;
  /** Kept publications, oldest first; `entries[i].offset === firstOffset + i`. {@link NO_ENTRIES} until the first. */
  entries: Publication[];
  touchedAt: number;
  /** What this channel keeps (an inbox's or an ordinary channel's). */
  keep: Retention;
}

/**
 * History in process memory: the embedded default. Lost on restart, which gives every channel a
 * new epoch, so resuming clients are told `recovered:false`.
 */
export class MemoryHistory implements History {
  private readonly streams = new Map<string, Stream>();
  /** `channel \0 key` → original position and expiry, in insertion (so expiry) order. */
  private readonly keys = new Map<string, StreamPosition & { expiresAt: number }>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private readonly classes: { plain: Retention; inbox: Retention };
  private closed = false;

  constructor(private readonly options: MemoryHistoryOptions) {
    this.now = options.now ?? Date.now;
    this.classes = retentionClasses(options);
    const every = Math.max(1000, Math.min(60_000, options.historyTtlMs));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  get ready(): boolean {
    return !this.closed;
  }

  async append(channel: string, input: PublicationInput): Promise<Publication> {
    return this.appendNow(channel, input);
  }

  /** Synchronous, so that appendOnce checks and appends with no await in between. */
  private appendNow(channel: string, input: PublicationInput): Publication {
    const stream = this.stream(channel);
    stream.offset += 1;
    stream.touchedAt = this.now();
    const pub = publicationAt(channel, stream.epoch, stream.offset, input);
    if (stream.keep.size > 0) {
      if (stream.entries === NO_ENTRIES) stream.entries = [];
      stream.entries.push(pub);
      if (stream.entries.length > stream.keep.size) stream.entries.shift();
    }
    return pub;
  }

  async appendOnce(channel: string, input: PublicationInput, key: string): Promise<AppendOnceResult> {
    const id = `${channel}\0${key}`;
    const seen = this.keys.get(id);
    if (seen && seen.expiresAt > this.now()) return { duplicate: true, position: { epoch: seen.epoch, offset: seen.offset } };
    const pub = this.appendNow(channel, input);
    this.keys.delete(id);
    this.keys.set(id, { epoch: pub.epoch, offset: pub.offset, expiresAt: this.now() + (this.options.idempotencyWindowMs ?? 300_000) });
    if (this.keys.size > MAX_IDEMPOTENCY_KEYS) this.keys.delete(this.keys.keys().next().value!);
    return { duplicate: false, pub };
  }

  async position(channel: string): Promise<StreamPosition> {
    const stream = this.stream(channel);
    return { epoch: stream.epoch, offset: stream.offset };
  }

  async read(channel: string, since: number, limit: number): Promise<HistoryPage> {
    const stream = this.stream(channel);
    this.expire(stream);
    const first = stream.entries[0]?.offset ?? stream.offset + 1;
    const start = Math.max(0, since + 1 - first);
    return {
      epoch: stream.epoch,
      offset: stream.offset,
      firstOffset: first,
      publications: stream.entries.slice(start, start + Math.max(0, limit)),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
  }

  /** Channels with state: the idle sweep's effect, for its test. */
  get channelCount(): number {
    return this.streams.size;
  }

  private stream(channel: string): Stream {
    let stream = this.streams.get(channel);
    if (!stream) {
      const keep = isUserChannel(channel) ? this.classes.inbox : this.classes.plain;
      stream = { epoch: nextEpoch(), offset: 0, entries: NO_ENTRIES, touchedAt: this.now(), keep };
      this.streams.set(channel, stream);
    }
    return stream;
  }

  private expire(stream: Stream): void {
    const cutoff = this.now() - stream.keep.ttlMs;
    let drop = 0;
    while (drop < stream.entries.length && stream.entries[drop]!.ts < cutoff) drop++;
    if (drop > 0) stream.entries.splice(0, drop);
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.keys) {
      if (entry.expiresAt > now) break; // insertion order is expiry order
      this.keys.delete(id);
    }
    for (const [channel, stream] of this.streams) {
      this.expire(stream);
      if (stream.entries.length === 0 && stream.touchedAt < now - stream.keep.metaTtlMs) this.streams.delete(channel);
    }
  }
}
