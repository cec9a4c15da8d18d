/**
 * Scenario 3, fan-out: one publisher, one channel with N subscribers (10k), publications repeated.
 * Two phases per run:
 *  - saturation: the publisher keeps `window` publications in flight (the next goes out when every
 *    subscriber has the oldest), for a fixed time: delivered messages per second;
 *  - fixed rate: publications at a fixed pace well below every system's capacity, each stamped with
 *    its intended send time, so latency (p50/p99/max) includes any wait the publisher was made to
 *    do (no coordinated omission).
 * The channel is the one every client is in by default: Switchboard's `broadcast` (admin publisher;
 * a `group:` would add a presence event per join), the raw peer's and Socket.IO's "everyone".
 */
import { merge, summarise } from '../lib/hist.js';
import {
  connectAll,
  cpuMeter,
  cpuSeconds,
  rounds,
  systemCpuSeconds,
  runnerClient,
  skippedNotes,
  spec,
  tabulate,
  userOn,
  warmUp,
  METRIC,
  type BenchContext,
  type Scenario,
} from '../lib/kit.js';
import type { BenchClient } from '../lib/clients.js';
import type { ClientSpec, CollectResult } from '../lib/protocol.js';
import { RAW_WS, SOCKETIO, SWITCHBOARD, socketioCluster, switchboardCluster, type RunningSystem } from '../lib/systems.js';
import { nowUs, sleep, waitUntil } from '../lib/util.js';

/** Deliveries per second of the fixed-rate phase (publications/s = this ÷ subscribers). */
const FIXED_DELIVERIES_PER_S = 20_000;
/** A publication not complete after this long is given up (its missing deliveries show as loss). */
const PUBLICATION_TIMEOUT_US = 10_000_000;

export const fanout: Scenario = {
  name: 'fanout',
  number: 3,
  title: 'Fan-out',
  async run(ctx) {
    const n = ctx.opts.clients ?? (ctx.opts.quick ? 1000 : 10_000);
    const durationMs = ctx.opts.durationMs ?? (ctx.opts.quick ? 2000 : 10_000);
    const window = ctx.opts.window;
    const fixedRate = Math.max(1, FIXED_DELIVERIES_PER_S / n);
    const systems = [
      SWITCHBOARD,
      RAW_WS,
      SOCKETIO,
      switchboardCluster(2),
      switchboardCluster(2, 'interest', { broker: 'rabbitmq' }),
      switchboardCluster(2, 'interest', { broker: 'nats' }),
      socketioCluster(2),
    ];
    // Through the gateway only when asked for by name (`--systems`): it is a deployment choice, not a peer.
    const viaGateway = switchboardCluster(2, 'interest', { gateway: true });
    if (ctx.opts.systems?.includes(viaGateway.id)) systems.push(viaGateway);
    const results = await rounds(ctx, `fan-out ${n}`, systems, (sys, note) => runOnce(ctx, sys, n, durationMs, window, fixedRate, note));
    return [
      tabulate(
        {
          name: 'fanout',
          scenario: 'fanout',
          title: `3. Fan-out: one channel, ${n.toLocaleString('en')} subscribers`,
          what: `Saturation: the publisher keeps ${window} publications in flight for ${durationMs / 1000} s; delivered/s = messages received by subscribers ÷ time from the first publication to the last delivery. Latency: ${fixedRate.toFixed(fixedRate < 10 ? 1 : 0)} publications/s (${FIXED_DELIVERIES_PER_S.toLocaleString('en')} deliveries/s) for ${durationMs / 1000} s, measured from each publication's intended send time. Clustered systems: subscribers alternate between the two nodes, the publisher is on the first. Server CPU (nodes, and for the clustered rows Redis, which keeps history, presence and the registry for every Switchboard row, plus the broker's process when it is not Redis: the bench's private nats-server, or the Erlang VM of the whole shared RabbitMQ server, which runs nothing else during the bench) and load-generator CPU are over the saturation phase. Ratios: one-node rows to Switchboard, two-node rows to Switchboard + Redis ×2; the two-node Switchboard rows' throughput also to Socket.IO + Redis ×2, paired run by run.`,
          size: `${n.toLocaleString('en')} subscribers, window ${window}, ${durationMs / 1000} s per phase`,
          metrics: [
            { key: 'deliveredPerS', label: 'delivered/s (saturation)', unit: 'msg/s', better: 'higher' },
            { key: 'p50', label: 'latency p50', unit: 'ms', better: 'lower' },
            { key: 'p99', label: 'latency p99', unit: 'ms', better: 'lower' },
            { key: 'max', label: 'latency max', unit: 'ms', better: 'lower' },
            { key: 'satP99', label: 'p99 at saturation', unit: 'ms', better: 'lower' },
            { key: 'lossPct', label: 'lost', unit: '%', better: 'lower' },
            { key: 'cpuUsPerMsg', label: 'server CPU per delivery', unit: 'µs', better: 'lower' },
            { key: 'kernelPct', label: 'server CPU in kernel', unit: '%', better: 'none' },
            METRIC.generator,
          ],
          primary: 'deliveredPerS',
          charts: [{ title: 'Fan-out latency at a fixed rate', metrics: ['p50', 'p99'], unit: 'ms' }],
          notes: skippedNotes(ctx, systems),
        },
        results,
        (c) => (c.nodes > 1 ? switchboardCluster(c.nodes).id : 'switchboard'),
        (c) => (c.nodes > 1 && c.family === 'switchboard' ? socketioCluster(c.nodes).id : undefined),
      ),
    ];
  },
};

/** Tracks publications in flight: done when every worker holding subscribers reported it complete. */
class InFlight {
  private readonly open = new Map<number, { sentUs: number; done: Set<number> }>();
  completed = 0;
  timedOut = 0;
  onComplete: (() => void) | null = null;

  constructor(private readonly workers: number) {}

  get size(): number {
    return this.open.size;
  }

  sent(seq: number): void {
    this.open.set(seq, { sentUs: nowUs(), done: new Set() });
  }

  workerDone(worker: number, seq: number): void {
    const e = this.open.get(seq);
    if (!e) return;
    e.done.add(worker);
    if (e.done.size >= this.workers) this.finish(seq);
  }

  /** Gives up on publications older than the timeout. */
  sweep(): void {
    const now = nowUs();
    for (const [seq, e] of this.open) {
      if (now - e.sentUs > PUBLICATION_TIMEOUT_US) {
        this.timedOut++;
        this.finish(seq);
      }
    }
  }

  private finish(seq: number): void {
    this.open.delete(seq);
    this.completed++;
    this.onComplete?.();
  }
}

let nextSeq = 1;

async function runOnce(
  ctx: BenchContext,
  sys: RunningSystem,
  n: number,
  durationMs: number,
  window: number,
  fixedRate: number,
  note: (s: string) => void,
): Promise<Record<string, number>> {
  await warmUp(ctx, sys);
  const workers = Math.min(ctx.pool.size, n);
  const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
  for (let i = 0; i < n; i++) perWorker[i % workers]!.push(spec(i, sys.urls[i % sys.urls.length]!, userOn(sys, `sub${i}`, i)));
  const c = await connectAll(ctx, sys.config.kind, perWorker);
  if (c.errors > 0) note(`${c.errors} of ${n} subscribers failed to connect (${c.errorSamples.join('; ')})`);
  if (c.ok === 0) throw new Error('no subscriber connected');
  const publisher = await runnerClient(sys, spec(-1, sys.urls[0]!, userOn(sys, 'publisher', 0), { admin: true }));
  try {
    const inflight = new InFlight(workers);
    ctx.pool.onSeqDone = (w, seq) => inflight.workerDone(w, seq);
    const sweeper = setInterval(() => inflight.sweep(), 200);
    try {
      // Warm-up: a few publications through the whole path before anything is measured.
      await ctx.pool.all(() => ({ op: 'listen', fanout: true }), 10_000);
      for (let k = 0; k < 5; k++) {
        const seq = nextSeq++;
        inflight.sent(seq);
        publisher.publish('*', seq, nowUs());
        await waitUntil(() => inflight.size === 0, 10_000, 5);
      }
      await ctx.pool.all(() => ({ op: 'collect' }), 10_000);

      // Saturation.
      const meter = cpuMeter(ctx, sys);
      const sat = { result: await saturate(publisher, inflight, window, durationMs), cpu: meter() };
      const satCollect = await ctx.pool.all<CollectResult>(() => ({ op: 'collect' }), 10_000);
      const delivered = satCollect.reduce((a, r) => a + r.delivered, 0);
      const lastDelivery = Math.max(...satCollect.map((r) => r.lastDeliveryUs));
      const satLat = summarise(merge(satCollect.map((r) => r.hist)));
      const expected = sat.result.published * c.ok;
      noteDrops(satCollect, note);

      // Fixed rate.
      await sleep(200);
      await ctx.pool.all(() => ({ op: 'listen', fanout: true }), 10_000);
      const fixed = await fixedPace(publisher, inflight, fixedRate, durationMs);
      const fixedCollect = await ctx.pool.all<CollectResult>(() => ({ op: 'collect' }), 10_000);
      const lat = summarise(merge(fixedCollect.map((r) => r.hist)));
      const fixedExpected = fixed * c.ok;
      const fixedDelivered = fixedCollect.reduce((a, r) => a + r.delivered, 0);
      noteDrops(fixedCollect, note);
      if (inflight.timedOut > 0) note(`${inflight.timedOut} publications not complete within ${PUBLICATION_TIMEOUT_US / 1e6} s`);

      const cpu = systemCpuSeconds(sat.cpu);
      return {
        deliveredPerS: delivered / ((lastDelivery - sat.result.startUs) / 1e6),
        p50: lat.p50,
        p99: lat.p99,
        max: lat.max,
        satP99: satLat.p99,
        lossPct: (100 * (expected + fixedExpected - delivered - fixedDelivered)) / Math.max(1, expected + fixedExpected),
        cpuUsPerMsg: (cpu * 1e6) / Math.max(1, delivered),
        kernelPct: (100 * (sat.cpu.server.system + sat.cpu.redis.system + sat.cpu.broker.system)) / Math.max(1e-9, cpu),
        genCpuPct: (100 * cpuSeconds(sat.cpu.generator)) / sat.cpu.seconds,
      };
    } finally {
      clearInterval(sweeper);
      ctx.pool.onSeqDone = null;
    }
  } finally {
    publisher.close();
  }
}

function noteDrops(collected: CollectResult[], note: (s: string) => void): void {
  const drops = collected.reduce((a, r) => a + r.drops, 0);
  if (drops > 0) note(`${drops} subscribers were disconnected (${[...new Set(collected.flatMap((r) => r.dropSamples))].join('; ')})`);
  const errs = collected.reduce((a, r) => a + r.serverErrors, 0);
  if (errs > 0) note(`${errs} error frames from the server`);
}

/** Keeps `window` publications in flight for `durationMs`, then lets the last ones land (bounded). */
async function saturate(
  publisher: BenchClient,
  inflight: InFlight,
  window: number,
  durationMs: number,
): Promise<{ published: number; startUs: number }> {
  const startUs = nowUs();
  const endUs = startUs + durationMs * 1000;
  let published = 0;
  const pump = () => {
    while (inflight.size < window && nowUs() < endUs && publisher.isOpen) {
      const seq = nextSeq++;
      inflight.sent(seq);
      publisher.publish('*', seq, nowUs());
      published++;
    }
  };
  inflight.onComplete = pump;
  pump();
  await sleep(durationMs);
  inflight.onComplete = null;
  await waitUntil(() => inflight.size === 0, PUBLICATION_TIMEOUT_US / 1000 + 1000, 5);
  return { published, startUs };
}

/** Publishes at `rate`/s for `durationMs`, each publication carrying its intended send time. */
async function fixedPace(publisher: BenchClient, inflight: InFlight, rate: number, durationMs: number): Promise<number> {
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const interval = 1e6 / rate;
  const start = nowUs() + 10_000;
  let k = 0;
  while (k < total) {
    const due = start + k * interval;
    const wait = (due - nowUs()) / 1000;
    if (wait > 0) await sleep(Math.min(wait, 50));
    while (k < total && start + k * interval <= nowUs()) {
      const seq = nextSeq++;
      inflight.sent(seq);
      publisher.publish('*', seq, start + k * interval);
      k++;
    }
  }
  await waitUntil(() => inflight.size === 0, PUBLICATION_TIMEOUT_US / 1000 + 1000, 5);
  return total;
}
