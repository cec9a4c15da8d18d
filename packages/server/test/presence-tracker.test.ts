/**
 * PresenceTracker's periodic jobs under load: a lease renewal that outlasts its interval is not
 * joined by a second one (that doubled the work of a node already behind), and it is logged.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Broker } from '../src/broker/broker.js';
import { createLogger } from '../src/logger.js';
import { NodeMetrics } from '../src/metrics.js';
import { MemoryPresenceStore } from '../src/presence/memory-presence-store.js';
import type { PresenceEntry } from '../src/presence/presence-store.js';
import { PresenceTracker, type TrackedSession } from '../src/presence/presence-tracker.js';
import { logSink } from './support/log-sink.js';
import { sleep } from './helpers.js';

/** A store whose renewals take `slowMs`, counting how many run at once. */
class SlowStore extends MemoryPresenceStore {
  running = 0;
  mostAtOnce = 0;
  calls = 0;
  constructor(private readonly slowMs: number) {
    super();
  }
  override async refresh(entries: PresenceEntry[]): Promise<PresenceEntry[]> {
    this.calls++;
    this.mostAtOnce = Math.max(this.mostAtOnce, ++this.running);
    await sleep(this.slowMs);
    this.running--;
    return super.refresh(entries);
  }
}

describe('presence tracker', () => {
  it('never runs two lease renewals at once, and logs one that outlasted its interval', async () => {
    const store = new SlowStore(700);
    const { lines, stream } = logSink();
    const session: TrackedSession = { id: 's1', user: 'alice', since: 1, channelNames: ['user:alice', 'group:ops'], has: () => true };
    // A lease of 1 s: renewed every 333 ms, so each 700 ms renewal spans two more ticks.
    const tracker = new PresenceTracker({
      store,
      broker: {} as Broker,
      nodeId: 'n1',
      presenceTtlMs: 1000,
      log: createLogger('n1', 'info', stream),
      metrics: new NodeMetrics('n1', false),
      sessions: () => [session],
      isOpen: () => true,
    });
    tracker.start();
    await sleep(2300);
    tracker.stop();
    await sleep(800);
    assert.equal(store.mostAtOnce, 1, 'one renewal at a time');
    assert.ok(store.calls >= 2 && store.calls <= 3, `renewed ${store.calls} times in 2.3 s (6 ticks)`);
    const warned = lines
      .map((l) => JSON.parse(l) as { msg: string; tookMs?: number; node?: string })
      .filter((l) => l.msg.includes('outlasted'));
    assert.ok(warned.length >= 1, 'the slow renewal is logged');
    assert.ok(warned[0]!.tookMs! >= 700);
  });
});
