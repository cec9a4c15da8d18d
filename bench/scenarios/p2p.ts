/**
 * Scenario 4, point-to-point: P pairs, each sender sending to its receiver. On one node (Switchboard,
 * raw ws, Socket.IO) and across two nodes, where each sender is on node 1 and its receiver on
 * node 2, so every message crosses the broker between the nodes (Redis pub/sub, RabbitMQ or NATS;
 * Socket.IO's Redis adapter). Two phases:
 *  - fixed rate (5,000 msg/s in total): latency from each message's intended send time;
 *  - saturation: every pair keeps `window` messages in flight (the receiver's arrival lets its
 *    sender send the next): delivered messages per second.
 * Two tables: one node (ratios to Switchboard, and Switchboard's to Socket.IO) and two nodes (ratios
 * to Switchboard + Redis ×2, and the Switchboard rows' also to Socket.IO + Redis ×2), paired run by run.
 */
import { merge, summarise } from '../lib/hist.js';
import {
  connectAll,
  cpuMeter,
  cpuSeconds,
  rounds,
  systemCpuSeconds,
  skippedNotes,
  spec,
  tabulate,
  userOn,
  METRIC,
  type BenchContext,
  type Scenario,
} from '../lib/kit.js';
import type { ClientSpec, CollectResult, SendResult } from '../lib/protocol.js';
import {
  RAW_WS,
  SOCKETIO,
  SWITCHBOARD,
  socketioCluster,
  switchboardCluster,
  type RunningSystem,
  type SystemConfig,
} from '../lib/systems.js';
import { nowUs, sleep } from '../lib/util.js';

const FIXED_RATE = 5000;
/** The quiet phase: few enough that each message is alone in its event-loop turn. */
const LOW_RATE = 100;
const LOW_MS = 3000;
const WINDOW = 2;
/** After a phase, deliveries are awaited until every message sent has arrived, or none came for this long… */
const QUIET_MS = 5000;
/** …or this long has passed: what has not arrived then counts as lost. */
const DRAIN_MS = 30_000;
const BROKERS_WHAT =
  " CPU of the nodes includes the broker's process: Redis for the Redis rows (which keep history, presence and the registry for every Switchboard row, so it counts in the NATS and RabbitMQ rows too), the bench's private nats-server for the NATS row, and for the RabbitMQ row the Erlang VM of the whole shared RabbitMQ server (which runs nothing else during the bench; the nodes use a vhost of the bench's own).";
const GATEWAY_WHAT =
  " Via gateway: the same two nodes, every client connecting through one `switchboard gateway` process (policy `hash`), with user names chosen so that the gateway puts each sender on node 1 and its receiver on node 2, as in the direct row; the gateway's CPU counts with the nodes'.";

export const p2p: Scenario = {
  name: 'p2p',
  number: 4,
  title: 'Point-to-point',
  async run(ctx) {
    const pairs = ctx.opts.clients ?? (ctx.opts.quick ? 200 : 1000);
    const durationMs = ctx.opts.durationMs ?? (ctx.opts.quick ? 2000 : 10_000);
    const single = [SWITCHBOARD, RAW_WS, SOCKETIO];
    // The same cluster with every client connecting through a gateway: what the gateway adds.
    const clustered = [
      switchboardCluster(2),
      switchboardCluster(2, 'interest', { broker: 'rabbitmq' }),
      switchboardCluster(2, 'interest', { broker: 'nats' }),
      socketioCluster(2),
      switchboardCluster(2, 'interest', { gateway: true }),
    ];
    const results = await rounds(ctx, `p2p ${pairs} pairs`, [...single, ...clustered], (sys, note) =>
      runOnce(ctx, sys, pairs, durationMs, note),
    );
    const phases = `Quiet: ${LOW_RATE} messages/s for ${LOW_MS / 1000} s (latency of a message alone in its turn). Fixed rate: ${FIXED_RATE.toLocaleString('en')} messages/s in total for ${durationMs / 1000} s, latency from each message's intended send time. Saturation: every pair keeps ${WINDOW} messages in flight for ${durationMs / 1000} s; delivered/s = messages received ÷ time from the first send to the last delivery. After each phase the bench waits for what is still in flight (until no message arrived for ${QUIET_MS / 1000} s, ${DRAIN_MS / 1000} s at most), so a system that falls behind the fixed rate shows it as latency, not as loss, and its backlog does not spill into the saturation phase.`;
    /** One table of the scenario, for the rows of one node count (none when none of them ran). */
    const table = (
      rows: typeof results,
      part: {
        name: string;
        title: string;
        what: string;
        after?: string;
        whose: string;
        chart: string;
        systems: SystemConfig[];
        baseline: string;
        peer: string;
      },
    ) =>
      rows.length === 0
        ? []
        : [
            tabulate(
              {
                scenario: 'p2p',
                name: part.name,
                title: `4. Point-to-point ${part.title}, ${pairs.toLocaleString('en')} pairs`,
                what: `${part.what} ${phases}${part.after ?? ''}`,
                size: `${pairs.toLocaleString('en')} pairs, ${durationMs / 1000} s per phase`,
                metrics: metrics(part.whose),
                primary: 'deliveredPerS',
                charts: [{ title: `${part.chart} at ${FIXED_RATE.toLocaleString('en')} msg/s`, metrics: ['p50', 'p99'], unit: 'ms' }],
                notes: skippedNotes(ctx, part.systems),
              },
              rows,
              () => part.baseline,
              (c) => (c.family === 'switchboard' ? part.peer : undefined),
            ),
          ];
    const oneNode = results.filter((r) => r.config.nodes === 1);
    const twoNodes = results.filter((r) => r.config.nodes > 1);
    return [
      ...table(oneNode, {
        name: 'p2p-1',
        title: 'on one node',
        what: "Each pair's sender and receiver are on the same server.",
        whose: 'server',
        chart: 'Point-to-point latency on one node',
        systems: single,
        baseline: SWITCHBOARD.id,
        peer: SOCKETIO.id,
      }),
      ...table(twoNodes, {
        name: 'p2p',
        title: 'across two nodes',
        what: "Each pair's sender is on node 1 and its receiver on node 2.",
        after: `${twoNodes.some((r) => r.config.broker === 'rabbitmq' || r.config.broker === 'nats') ? BROKERS_WHAT : ''}${twoNodes.some((r) => r.config.gateway) ? GATEWAY_WHAT : ''}`,
        whose: 'nodes + Redis + broker',
        chart: 'Point-to-point latency',
        systems: clustered,
        baseline: switchboardCluster(2).id,
        peer: socketioCluster(2).id,
      }),
    ];
  },
};

/** The table's columns; `whose` is whose CPU counts (the server, or the nodes with Redis and the broker). */
export function metrics(whose: string) {
  return [
    { key: 'deliveredPerS', label: 'delivered/s (saturation)', unit: 'msg/s', better: 'higher' as const },
    { key: 'lowP50', label: `p50 at ${LOW_RATE} msg/s`, unit: 'ms', better: 'lower' as const },
    { key: 'lowP99', label: `p99 at ${LOW_RATE} msg/s`, unit: 'ms', better: 'lower' as const },
    { key: 'p50', label: `p50 at ${FIXED_RATE / 1000}k msg/s`, unit: 'ms', better: 'lower' as const },
    { key: 'p99', label: `p99 at ${FIXED_RATE / 1000}k msg/s`, unit: 'ms', better: 'lower' as const },
    { key: 'max', label: `max at ${FIXED_RATE / 1000}k msg/s`, unit: 'ms', better: 'lower' as const },
    { key: 'satP99', label: 'p99 at saturation', unit: 'ms', better: 'lower' as const },
    { key: 'lossPct', label: 'lost', unit: '%', better: 'lower' as const },
    { key: 'cpuUsPerMsg', label: `CPU per message at saturation (${whose})`, unit: 'µs', better: 'lower' as const },
    { key: 'fixedCpuUsPerMsg', label: `CPU per message at ${FIXED_RATE / 1000}k msg/s`, unit: 'µs', better: 'lower' as const },
    { key: 'fixedCpuPct', label: `${whose} CPU at ${FIXED_RATE / 1000}k msg/s`, unit: '% of a core', better: 'lower' as const },
    { ...METRIC.generator, label: `load generator CPU at ${FIXED_RATE / 1000}k msg/s` },
  ];
}

export async function runOnce(
  ctx: BenchContext,
  sys: RunningSystem,
  pairs: number,
  durationMs: number,
  note: (s: string) => void,
): Promise<Record<string, number>> {
  // One node: sender and receiver on the same server.
  const [a, b = a] = sys.urls as [string, ...string[]];
  const receivers: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
  const senders: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
  // A pair lives in one worker: the receiver's arrival is what lets its sender go on at saturation.
  for (let i = 0; i < pairs; i++) {
    const w = i % ctx.pool.size;
    const receiver = userOn(sys, `r${i}`, 1);
    receivers[w]!.push(spec(2 * i + 1, b, receiver, { role: 'receiver', pair: i }));
    senders[w]!.push(spec(2 * i, a, userOn(sys, `s${i}`, 0), { role: 'sender', pair: i, to: receiver }));
  }
  // Receivers first, so that every message has somewhere to go.
  for (const group of [receivers, senders]) {
    const c = await connectAll(ctx, sys.config.kind, group);
    if (c.errors > 0) note(`${c.errors} clients failed to connect (${c.errorSamples.join('; ')})`);
  }
  const workers = senders.filter((s) => s.length > 0).length;

  // Warm-up at a tenth of the fixed rate.
  await sendRate(ctx, workers, FIXED_RATE / 10, 1000);
  await sleep(500);
  await ctx.pool.all(() => ({ op: 'listen', fanout: false }), 10_000);

  // A publication alone in its event-loop turn: what a quiet system's latency is.
  const low = await sendRate(ctx, workers, LOW_RATE, LOW_MS);
  await sleep(300);
  const lowLat = summarise(merge((await collectUntil(ctx, low.sent)).map((r) => r.hist)));

  const fixedMeter = cpuMeter(ctx, sys);
  const fixed = await sendRate(ctx, workers, FIXED_RATE, durationMs);
  const fixedCpu = fixedMeter();
  await sleep(1000);
  const fixedCollect = await collectUntil(ctx, fixed.sent);
  // Per message: the CPU until the last of them arrived (a backlog is delivered after the sending).
  const fixedCpuAll = fixedMeter();
  const lat = summarise(merge(fixedCollect.map((r) => r.hist)));
  const fixedDelivered = fixedCollect.reduce((n, r) => n + r.delivered, 0);

  const meter = cpuMeter(ctx, sys);
  const sat = {
    result: await ctx.pool.all<SendResult>(
      (i) => (i < workers ? { op: 'send-saturate', window: WINDOW, durationMs } : null),
      durationMs + 30_000,
    ),
  };
  const sent = sat.result.reduce((n, r) => n + r.sent, 0);
  const satCollect = await collectUntil(ctx, sent);
  // Until the last message arrived, as for the fixed rate.
  const satCpu = meter();
  const delivered = satCollect.reduce((n, r) => n + r.delivered, 0);
  const start = Math.min(...sat.result.map((r) => r.startUs));
  const end = Math.max(...satCollect.map((r) => r.lastDeliveryUs));
  const drops = [...fixedCollect, ...satCollect].reduce((n, r) => n + r.drops, 0);
  if (drops > 0) note(`${drops} clients were disconnected`);
  return {
    deliveredPerS: delivered / ((end - start) / 1e6),
    lowP50: lowLat.p50,
    lowP99: lowLat.p99,
    p50: lat.p50,
    p99: lat.p99,
    max: lat.max,
    satP99: summarise(merge(satCollect.map((r) => r.hist))).p99,
    lossPct: (100 * (fixed.sent + sent - fixedDelivered - delivered)) / Math.max(1, fixed.sent + sent),
    cpuUsPerMsg: (systemCpuSeconds(satCpu) * 1e6) / Math.max(1, delivered),
    fixedCpuUsPerMsg: (systemCpuSeconds(fixedCpuAll) * 1e6) / Math.max(1, fixedDelivered),
    fixedCpuPct: (100 * systemCpuSeconds(fixedCpu)) / fixedCpu.seconds,
    genCpuPct: (100 * cpuSeconds(fixedCpu.generator)) / fixedCpu.seconds,
  };
}

/**
 * Collects the workers' deliveries until `expected` have arrived, none arrived for `QUIET_MS`, or
 * `DRAIN_MS` passed: one result per worker and collect, to be summed (counts) or merged (histograms).
 */
async function collectUntil(ctx: BenchContext, expected: number): Promise<CollectResult[]> {
  const out = await ctx.pool.all<CollectResult>(() => ({ op: 'collect' }), 10_000);
  let got = out.reduce((n, r) => n + r.delivered, 0);
  const deadline = Date.now() + DRAIN_MS;
  let lastArrival = Date.now();
  while (got < expected && Date.now() < deadline && Date.now() - lastArrival < QUIET_MS) {
    await sleep(250);
    const more = await ctx.pool.all<CollectResult>(() => ({ op: 'collect' }), 10_000);
    const n = more.reduce((k, r) => k + r.delivered, 0);
    if (n > 0) lastArrival = Date.now();
    got += n;
    out.push(...more);
  }
  return out;
}

/** Every worker's senders at `rate` msg/s in total. */
async function sendRate(ctx: BenchContext, workers: number, rate: number, durationMs: number): Promise<{ sent: number }> {
  const startAtUs = nowUs() + 100_000;
  const out = await ctx.pool.all<SendResult>(
    (i) => (i < workers ? { op: 'send-rate', rate: rate / workers, durationMs, startAtUs } : null),
    durationMs + 40_000,
  );
  return { sent: out.reduce((n, r) => n + r.sent, 0) };
}
