/**
 * The chaos checker: what the publisher had acknowledged against what each client's app saw.
 * Pure bookkeeping (no sockets), so its verdicts are unit-tested on made-up histories.
 *
 * Per client and in total:
 * - **lost**: acknowledged on a channel the client is in, never seen, and not announced by a
 *   `recovery-failed` covering it — the failure that must never happen;
 * - **told-lost**: never seen, but a `recovery-failed` said so (the app was told to refetch);
 * - **duplicated**: seen more than once by the app;
 * - **out of order**: seen after a later offset of the same channel and epoch;
 * - **catch-up**: for each time the client lost its connection, from the drop to the moment it had
 *   seen every message acknowledged before it was back (its welcome).
 */

/** A publication the publisher got a 200 (or reply) for. */
export interface Acked {
  channel: string;
  epoch: string;
  offset: number;
  /** When the acknowledgement came, ms. */
  at: number;
}

/** What one client recorded. */
export interface ClientLog {
  id: string;
  /** Channels it is in, from the start of the run. */
  channels: readonly string[];
  /** Every message the app was handed, in order. */
  seen: { channel: string; epoch: string; offset: number; at: number }[];
  /** Every `recovery-failed`: the position the client had, and the one the server gave instead. */
  failures: { channel: string; from: { epoch: string; offset: number } | undefined; to: { epoch: string; offset: number }; at: number }[];
  /** Every lost connection: when it dropped and when the next welcome came (undefined: never). */
  drops: { at: number; back: number | undefined }[];
  /**
   * Where the client started in each channel (its first welcome): only later offsets of that epoch,
   * or another epoch, are expected of it. Absent: everything acknowledged is.
   */
  starts?: Record<string, { epoch: string; offset: number }>;
  /** When the client left for good: what was acknowledged after `leftAt − LEAVE_GRACE_MS` is not expected. */
  leftAt?: number;
  /**
   * For a client that, before leaving, waited to see what had been acknowledged on its channels:
   * when that was read, and the positions it waited for. Everything acknowledged before then is
   * expected, with no grace; of what was acknowledged in that very millisecond, what the positions cover.
   */
  awaited?: { at: number; positions: Record<string, { epoch: string; offset: number }> };
}

/** Time a message may still be on its way to a client that leaves (its last moments are not judged). */
export const LEAVE_GRACE_MS = 2000;

/** A live delivery later than this is late; one acknowledged within the window after a reconnect is counted apart. */
const LATE_MS = 10_000;
const RECONNECT_WINDOW_MS = 120_000;

/** One client's verdict. */
export interface ClientVerdict {
  id: string;
  expected: number;
  seen: number;
  lost: number;
  toldLost: number;
  duplicated: number;
  outOfOrder: number;
  /** Catch-up of each drop, ms (a drop never caught up is left out and counted in `neverCaughtUp`). */
  catchUpMs: number[];
  neverCaughtUp: number;
  /** From acknowledgement to first sight, ms, of each message acknowledged while the client was connected. */
  liveDelayMs: number[];
  /** Live deliveries later than 10 s of messages acknowledged within 2 minutes after one of the client's reconnects. */
  lateAfterReconnect: number;
  /** A few of the lost positions, for the report. */
  lostSample: string[];
}

/** The whole run's verdict. */
export interface Verdict {
  clients: ClientVerdict[];
  acked: number;
  lost: number;
  toldLost: number;
  duplicated: number;
  outOfOrder: number;
  drops: number;
  catchUpP50Ms: number | undefined;
  catchUpP95Ms: number | undefined;
  catchUpMaxMs: number | undefined;
  neverCaughtUp: number;
  /** Delivery delay of live messages (acknowledged while their client was connected), ms. */
  liveDelayP50Ms: number | undefined;
  liveDelayP99Ms: number | undefined;
  liveDelayMaxMs: number | undefined;
  /** Live deliveries later than 10 s, and of them those acknowledged within 2 minutes after their client reconnected. */
  liveLate: number;
  liveLateAfterReconnect: number;
}

const key = (channel: string, epoch: string, offset: number) => `${channel}|${epoch}|${offset}`;

/** True when the failure announced that `m` would not be delivered. */
function covers(f: ClientLog['failures'][number], m: Acked): boolean {
  if (f.channel !== m.channel) return false;
  const from = f.from;
  if (f.to.epoch === m.epoch && m.offset <= f.to.offset) {
    // In the epoch the client was moved to: everything up to the new position.
    return !from || from.epoch !== m.epoch || m.offset > from.offset;
  }
  // In the epoch the client had: everything after its position (that epoch is gone for it).
  return from !== undefined && from.epoch === m.epoch && from.epoch !== f.to.epoch && m.offset > from.offset;
}

/** What `log`'s client had to see of `acked`: its channels, after its start, before it left. */
function expectedOf(acked: readonly Acked[] | ReadonlyMap<string, readonly Acked[]>, log: ClientLog): Acked[] {
  const byChannel = acked instanceof Map ? acked : indexByChannel(acked as readonly Acked[]);
  const until = log.awaited?.at ?? (log.leftAt === undefined ? Infinity : log.leftAt - LEAVE_GRACE_MS);
  const mine: Acked[] = [];
  for (const channel of log.channels) {
    const start = log.starts?.[channel];
    const awaited = log.awaited?.positions[channel];
    for (const a of byChannel.get(channel) ?? []) {
      if (a.at > until) continue;
      if (log.awaited && a.at === until && !(awaited && a.epoch === awaited.epoch && a.offset <= awaited.offset)) continue;
      if (start && a.epoch === start.epoch && a.offset <= start.offset) continue;
      mine.push(a);
    }
  }
  return mine;
}

function indexByChannel(acked: readonly Acked[]): Map<string, Acked[]> {
  const byChannel = new Map<string, Acked[]>();
  for (const a of acked) {
    const list = byChannel.get(a.channel);
    if (list) list.push(a);
    else byChannel.set(a.channel, [a]);
  }
  return byChannel;
}

/** Judges one client's log against what was acknowledged (all of it, or indexed by channel). */
export function judgeClient(acked: readonly Acked[] | ReadonlyMap<string, readonly Acked[]>, log: ClientLog): ClientVerdict {
  const mine = expectedOf(acked, log);
  const counts = new Map<string, number>();
  const firstSeenAt = new Map<string, number>();
  let outOfOrder = 0;
  const last = new Map<string, { epoch: string; offset: number }>();
  for (const s of log.seen) {
    const k = key(s.channel, s.epoch, s.offset);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    if (!firstSeenAt.has(k)) firstSeenAt.set(k, s.at);
    const prev = last.get(s.channel);
    if (prev && prev.epoch === s.epoch && s.offset < prev.offset) outOfOrder++;
    last.set(s.channel, { epoch: s.epoch, offset: s.offset });
  }
  let lost = 0;
  let toldLost = 0;
  const lostSample: string[] = [];
  const missing: Acked[] = [];
  for (const m of mine) {
    if (counts.has(key(m.channel, m.epoch, m.offset))) continue;
    missing.push(m);
    if (log.failures.some((f) => covers(f, m))) toldLost++;
    else {
      lost++;
      if (lostSample.length < 5) lostSample.push(`${m.channel}@${m.epoch}:${m.offset} (${lostContext(log, m)})`);
    }
  }
  let duplicated = 0;
  for (const n of counts.values()) duplicated += n - 1;
  const catchUpMs: number[] = [];
  let neverCaughtUp = 0;
  for (const d of log.drops) {
    if (d.back === undefined) {
      neverCaughtUp++;
      continue;
    }
    // Everything acknowledged before the client was back, and not announced as lost, must be seen.
    let caughtUpAt = d.back;
    let never = false;
    for (const m of mine) {
      if (m.at > d.back) continue;
      const at = firstSeenAt.get(key(m.channel, m.epoch, m.offset));
      if (at === undefined) {
        if (!log.failures.some((f) => covers(f, m))) never = true;
        continue;
      }
      if (at > caughtUpAt) caughtUpAt = at;
    }
    if (never) neverCaughtUp++;
    else catchUpMs.push(Math.max(0, caughtUpAt - d.at));
  }
  const liveDelayMs: number[] = [];
  let lateAfterReconnect = 0;
  const away = (at: number) => log.drops.some((d) => at >= d.at && at <= (d.back ?? Infinity));
  const soonAfterReconnect = (at: number) =>
    log.drops.some((d) => d.back !== undefined && at > d.back && at - d.back < RECONNECT_WINDOW_MS);
  for (const m of mine) {
    const at = firstSeenAt.get(key(m.channel, m.epoch, m.offset));
    if (at === undefined || away(m.at)) continue;
    liveDelayMs.push(Math.max(0, at - m.at));
    if (at - m.at > LATE_MS && soonAfterReconnect(m.at)) lateAfterReconnect++;
  }
  return {
    id: log.id,
    expected: mine.length,
    seen: log.seen.length,
    lost,
    toldLost,
    duplicated,
    outOfOrder,
    catchUpMs,
    neverCaughtUp,
    liveDelayMs,
    lateAfterReconnect,
    lostSample,
  };
}

/** Where a lost message stood in its client's life: how long before it left, the last offset it saw there. */
function lostContext(log: ClientLog, m: Acked): string {
  const parts: string[] = [];
  if (log.awaited) {
    const w = log.awaited.positions[m.channel];
    parts.push(
      `acked ${Math.round(log.awaited.at - m.at)} ms before the client read ${w ? `${w.epoch}:${w.offset}` : 'nothing'} there to wait for`,
    );
  }
  if (log.leftAt !== undefined) parts.push(`acked ${Math.round(log.leftAt - m.at)} ms before the client left`);
  else parts.push('client stayed');
  const last = log.seen.filter((s) => s.channel === m.channel).at(-1);
  parts.push(
    last ? `last seen there ${last.epoch}:${last.offset} at ${Math.round(last.at - m.at)} ms after the ack` : 'nothing seen there',
  );
  const drop = log.drops.find((d) => d.at <= m.at + 10_000 && (d.back === undefined || d.back >= m.at - 10_000));
  if (drop) parts.push(`a drop ${Math.round(drop.at - m.at)} ms from the ack`);
  return parts.join(', ');
}

/** Index of the first element of `sorted` at or above `x`. */
function lowerBound(sorted: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function quantile(sorted: ArrayLike<number>, q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** Judges every client; sums and catch-up quantiles over all drops. */
export function judge(acked: readonly Acked[], logs: readonly ClientLog[]): Verdict {
  const byChannel = indexByChannel(acked);
  const clients = logs.map((log) => judgeClient(byChannel, log));
  const sum = (f: (c: ClientVerdict) => number) => clients.reduce((n, c) => n + f(c), 0);
  const catchUps = clients.flatMap((c) => c.catchUpMs).sort((a, b) => a - b);
  const delays = Float64Array.from(clients.flatMap((c) => c.liveDelayMs)).sort();
  return {
    clients,
    acked: acked.length,
    lost: sum((c) => c.lost),
    toldLost: sum((c) => c.toldLost),
    duplicated: sum((c) => c.duplicated),
    outOfOrder: sum((c) => c.outOfOrder),
    drops: logs.reduce((n, l) => n + l.drops.length, 0),
    catchUpP50Ms: quantile(catchUps, 0.5),
    catchUpP95Ms: quantile(catchUps, 0.95),
    catchUpMaxMs: catchUps.at(-1),
    neverCaughtUp: sum((c) => c.neverCaughtUp),
    liveDelayP50Ms: quantile(delays, 0.5),
    liveDelayP99Ms: quantile(delays, 0.99),
    liveDelayMaxMs: delays.at(-1),
    liveLate: delays.length - lowerBound(delays, LATE_MS + 1e-9),
    liveLateAfterReconnect: sum((c) => c.lateAfterReconnect),
  };
}

/** The latest acknowledged position of each channel. */
export function latestAcked(acked: readonly Acked[]): Map<string, Acked> {
  const latest = new Map<string, Acked>();
  for (const a of acked) {
    const last = latest.get(a.channel);
    if (!last || a.at > last.at) latest.set(a.channel, a);
  }
  return latest;
}

/**
 * The highest acknowledged offset per channel, kept up to date from publishers' growing `acked`
 * lists (each read on from where the last look stopped).
 */
export class LatestAcked {
  private readonly latest = new Map<string, Acked>();
  private readonly read: number[];

  constructor(private readonly lists: readonly (readonly Acked[])[]) {
    this.read = lists.map(() => 0);
  }

  /** Where `channels` stand now, and when that was read: every acknowledgement until `at` is in it. */
  of(channels: readonly string[]): { at: number; latest: Map<string, Acked> } {
    const at = Date.now();
    this.lists.forEach((list, k) => {
      for (let i = this.read[k]!; i < list.length; i++) {
        const a = list[i]!;
        const known = this.latest.get(a.channel);
        // Within an epoch the higher offset; a new epoch (history reset) by the later acknowledgement.
        const newer = !known || (known.epoch === a.epoch ? a.offset > known.offset : a.at >= known.at);
        if (newer) this.latest.set(a.channel, a);
      }
      this.read[k] = list.length;
    });
    const mine = new Map<string, Acked>();
    for (const c of channels) {
      const a = this.latest.get(c);
      if (a) mine.set(c, a);
    }
    return { at, latest: mine };
  }
}

/** True when the client has seen the latest acknowledged position of each of its channels (or started after it). */
export function hasSeenLatest(log: ClientLog, latest: ReadonlyMap<string, Acked>): boolean {
  return log.channels.every((channel) => {
    const last = latest.get(channel);
    if (!last) return true;
    const start = log.starts?.[channel];
    if (start && start.epoch === last.epoch && start.offset >= last.offset) return true;
    // From the end: the latest message seen on the channel is the one to compare.
    for (let i = log.seen.length - 1; i >= 0; i--) {
      const s = log.seen[i]!;
      if (s.channel === channel) return s.epoch !== last.epoch || s.offset >= last.offset;
    }
    return false;
  });
}
