import type { Logger } from 'pino';
import type { StreamPosition, SubscriptionState } from '@switchboard/protocol';
import { SwitchboardError } from './errors.js';
import type { History, HistoryPage } from './history/history.js';
import type { NodeMetrics } from './metrics.js';
import type { Channels, PublishOutcome, PublishSource } from './node-context.js';
import { MAX_DATA_DEPTH, nestedDeeperThan, type Publication, type PublicationInput } from './publication.js';
import { PublishFailure, type PublicationPath } from './publish/publication-path.js';

/** The least time between two log lines of one kind of failure. */
const LOG_EVERY_MS = 1000;

/** What a {@link ChannelService} works with. */
export interface ChannelServiceDeps {
  publication: PublicationPath;
  history: History;
  /** Most publications replayed per channel; a bigger gap is `recovered: false`. */
  maxRecoveryMessages: number;
  metrics: NodeMetrics;
  log: Logger;
  /** Called with every accepted publication before the publisher is answered (webhooks of inbox messages). */
  published?: (pub: Publication) => Promise<void>;
}

/**
 * Publications read per history round trip of a replay (recovery, inbox catch-up). A longer replay
 * goes page by page, the next read once the socket has sent most of the last page, so that a
 * reconnect after a busy minute neither holds megabytes nor trips the slow-consumer limit.
 */
export const RECOVERY_PAGE = 500;

/** True when `publications` (one page) ends before `latest`, the channel's latest offset. */
export function hasMore(publications: readonly Publication[], latest: number): boolean {
  const last = publications[publications.length - 1];
  return last !== undefined && last.offset < latest;
}

/**
 * True when a subscriber at `since` can be brought up to date from the history `page` read after
 * `since.offset`: same epoch, nothing in between trimmed, at most `limit` behind.
 */
export function canRecover(since: StreamPosition, page: Pick<HistoryPage, 'epoch' | 'offset' | 'firstOffset'>, limit: number): boolean {
  return (
    page.epoch === since.epoch && since.offset <= page.offset && page.firstOffset <= since.offset + 1 && page.offset - since.offset <= limit
  );
}

/** Publishing into channels (for sessions and the HTTP API) and recovering from them. */
export class ChannelService implements Channels {
  /** When each kind of failure was last logged, and how many of it were not logged since. */
  private readonly logged = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly deps: ChannelServiceDeps) {}

  async publish(channel: string, input: PublicationInput, source: PublishSource, key?: string): Promise<PublishOutcome> {
    // Checked before the append: a publication that cannot be serialised would poison history.
    if (nestedDeeperThan(input.data, MAX_DATA_DEPTH)) {
      throw new SwitchboardError('ERR_BAD_FRAME', `data is nested deeper than ${MAX_DATA_DEPTH} levels`);
    }
    const { metrics } = this.deps;
    // performance.now, not the histogram's startTimer: no closures and hrtime pairs per publication.
    const started = performance.now();
    let result;
    try {
      result = await this.deps.publication.publish(channel, input, key);
    } catch (err) {
      this.failed(err, 'publish failed');
      throw err;
    }
    if (result.duplicate) return { ...result.position, duplicate: true };
    metrics.publishLatency.observe((performance.now() - started) / 1000);
    if (this.deps.published) await this.deps.published(result.pub);
    metrics.countPublication(source);
    return { epoch: result.pub.epoch, offset: result.pub.offset, duplicate: false };
  }

  async recover(
    channel: string,
    since: StreamPosition | undefined,
  ): Promise<{ state: SubscriptionState; replay: Publication[]; more: boolean }> {
    const { history, maxRecoveryMessages: limit, metrics } = this.deps;
    try {
      if (!since) return { state: await history.position(channel), replay: [], more: false };
      const page = await history.read(channel, since.offset, Math.min(limit, RECOVERY_PAGE));
      const recovered = canRecover(since, page, limit);
      metrics.recoveries.inc({ recovered: String(recovered) });
      const replay = recovered ? page.publications : [];
      return { state: { epoch: page.epoch, offset: page.offset, recovered }, replay, more: recovered && hasMore(replay, page.offset) };
    } catch (err) {
      this.failed(err, 'history read failed');
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable', { cause: err });
    }
  }

  async page(channel: string, since: StreamPosition): Promise<{ publications: Publication[]; more: boolean }> {
    let page;
    try {
      page = await this.deps.history.read(channel, since.offset, RECOVERY_PAGE);
    } catch (err) {
      this.failed(err, 'history read failed');
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable', { cause: err });
    }
    // The channel lost its history meanwhile: nothing more to replay from this epoch.
    if (page.epoch !== since.epoch) return { publications: [], more: false };
    return { publications: page.publications, more: hasMore(page.publications, page.offset) };
  }

  /**
   * Counts every failure; logs the first of each kind, then at most one line per second with how
   * many were left out — an outage at 1,000 publications/s must not write 1,000 lines a second.
   */
  private failed(err: unknown, what: string): void {
    const component = err instanceof PublishFailure ? err.stage : 'history';
    this.deps.metrics.engineErrors.inc({ component });
    const key = `${component}:${what}`;
    const now = Date.now();
    const last = this.logged.get(key);
    if (last && now - last.at < LOG_EVERY_MS) {
      last.suppressed++;
      return;
    }
    const cause = err instanceof SwitchboardError && err.cause !== undefined ? err.cause : err;
    const suppressed = last?.suppressed ?? 0;
    this.logged.set(key, { at: now, suppressed: 0 });
    this.deps.log.error(
      { err: cause, component, detail: err instanceof Error ? err.message : undefined, ...(suppressed ? { suppressed } : {}) },
      what,
    );
  }
}
