/**
 * Scenario 8, scale-out: N live connections (100,000) spread over the nodes of a cluster (six, on
 * one Redis), from a load generator of as many worker processes as the file-descriptor limit
 * needs. Measures what it takes to get everyone connected (rate, errors), what each connection
 * costs each node in memory, what the idle cluster costs in CPU (heartbeats, presence renewals),
 * and how long a broadcast takes to reach every one of them (publish to receipt, every delivery).
 */
import { merge, summarise } from '../lib/hist.js';
import {
  connectAll,
  cpuMeter,
  cpuSeconds,
  rounds,
  runnerClient,
  skippedNotes,
  spec,
  systemCpuSeconds,
  tabulate,
  METRIC,
  type BenchContext,
  type Scenario,
} from '../lib/kit.js';
import { WorkerPool } from '../lib/pool.js';
import { rssKiB } from '../lib/proc.js';
import type { ClientSpec, CollectResult } from '../lib/protocol.js';
import { switchboardCluster, type RunningSystem } from '../lib/systems.js';
import { nowUs, sleep, waitUntil } from '../lib/util.js';
import { redisDelta, redisStats, topCalls } from '../lib/redis-stats.js';

/** Sockets one load-generator process holds at most (the hard limit is 20,000 descriptors). */
const PER_WORKER = 15_000;
/** Clients one gateway worker is given at most, in descriptors (two per client). */
const PER_GATEWAY_WORKER = 14_000;
/** A broadcast not everywhere after this long is given up (its missing deliveries count as lost). */
const BROADCAST_TIMEOUT_MS = 30_000;

export const scale: Scenario = {
  name: 'scale',
  number: 8,
  title: 'Scale-out',
  async run(ctx) {
    const n = ctx.opts.clients ?? (ctx.opts.quick ? 6000 : 100_000);
    const broadcasts = ctx.opts.quick ? 3 : 5;
    const idleMs = ctx.opts.durationMs ?? (ctx.opts.quick ? 3000 : 10_000);
    // A gateway worker holds two descriptors per client (its socket and the one to the node).
    const gatewayWorkers = Math.ceil((2 * n) / PER_GATEWAY_WORKER);
    const systems = [switchboardCluster(6), switchboardCluster(6, 'hash', { gateway: true, gatewayWorkers })];
    const results = await rounds(ctx, `scale ${n}`, systems, (sys, note) => runOnce(ctx, sys, n, broadcasts, idleMs, note));
    return [
      tabulate(
        {
          name: 'scale',
          scenario: 'scale',
          title: `8. Scale-out: ${n.toLocaleString('en')} connections over 6 nodes`,
          what: `${n.toLocaleString('en')} clients connect (500 attempts in flight), dealt in turn to the nodes, from ${Math.ceil(n / PER_WORKER)} or more load-generator processes over source addresses 127.0.0.2–254; each is subscribed to its user channel and to broadcast, with presence recorded. Connect rate = connected ÷ time from the first attempt to the last client usable. Memory per connection: each node's RSS after the clients settled minus its RSS before, divided by its clients (mean and worst node). Idle CPU: nodes + Redis over ${idleMs / 1000} s with everyone connected and nothing published. Broadcast: ${broadcasts} publications to \`broadcast\` from an admin client on the first node, one at a time, a second apart; latency from the publish call to each client's receipt, over every delivery. The second system is the same cluster with \`hash\` routing behind \`switchboard gateway\` (policy \`hash\`, ${gatewayWorkers} worker processes, two descriptors per client each): every client connects to the gateway, and the gateway's CPU counts with the nodes'.`,
          size: `${n.toLocaleString('en')} connections, 6 nodes, ${broadcasts} broadcasts`,
          metrics: [
            { key: 'rate', label: 'connections/s', unit: '/s', better: 'higher' },
            METRIC.errors,
            { key: 'connectP99', label: 'connect p99', unit: 'ms', better: 'lower' },
            { key: 'memKiB', label: 'node memory per connection (mean)', unit: 'KiB', better: 'lower' },
            { key: 'memMaxKiB', label: 'node memory per connection (worst node)', unit: 'KiB', better: 'lower' },
            { key: 'cpuUsPerConn', label: 'nodes + Redis CPU per connection', unit: 'µs', better: 'lower' },
            { key: 'idleCpuPct', label: 'idle CPU, nodes + Redis', unit: '% of a core', better: 'lower' },
            { key: 'p50', label: 'broadcast p50', unit: 'ms', better: 'lower' },
            { key: 'p99', label: 'broadcast p99', unit: 'ms', better: 'lower' },
            { key: 'max', label: 'broadcast max', unit: 'ms', better: 'lower' },
            { key: 'lossPct', label: 'lost', unit: '%', better: 'lower' },
            { key: 'cpuUsPerDelivery', label: 'nodes + Redis CPU per delivery', unit: 'µs', better: 'lower' },
            METRIC.generator,
          ],
          primary: 'p99',
          notes: skippedNotes(ctx, systems),
        },
        results,
        () => switchboardCluster(6).id,
      ),
    ];
  },
};

async function runOnce(
  base: BenchContext,
  sys: RunningSystem,
  n: number,
  broadcasts: number,
  idleMs: number,
  note: (s: string) => void,
): Promise<Record<string, number>> {
  // As many load-generator processes as the descriptors need, at least the bench's own.
  const need = Math.max(base.pool.size, Math.ceil(n / PER_WORKER));
  const pool = need > base.pool.size ? new WorkerPool(need) : base.pool;
  const ctx: BenchContext = { ...base, pool };
  if (pool !== base.pool) ctx.progress.watch(pool);
  const nodes = sys.config.nodes;
  try {
    await sleep(1000);
    const before = sys.pids.slice(0, nodes).map((pid) => rssKiB(pid));
    const gatewayBefore = sys.pids.slice(nodes).reduce((a, pid) => a + rssKiB(pid), 0);
    const heapBefore = await Promise.all((sys.nodeUrls ?? []).map(nodeHeap));
    const perWorker: ClientSpec[][] = Array.from({ length: pool.size }, () => []);
    for (let i = 0; i < n; i++) perWorker[i % pool.size]!.push(spec(i, sys.urls[i % nodes]!, `scale${i}`));
    const meter = cpuMeter(ctx, sys);
    const c = await connectAll(ctx, sys.config.kind, perWorker, { concurrency: 500, timeoutMs: 60_000 });
    const connectCpu = meter();
    for (const s of c.errorSamples) note(`connect error: ${s}`);
    if (c.ok === 0) throw new Error('no client connected');

    await sleep(3000);
    const after = sys.pids.slice(0, nodes).map((pid) => rssKiB(pid));
    const perNode = after.map((kib, i) => (kib - before[i]!) / Math.max(1, Math.round(c.ok / nodes)));
    note(`RSS per node after connecting (MiB): ${after.map((k) => Math.round(k / 1024)).join(', ')}`);
    if (sys.config.gateway) {
      const gatewayAfter = sys.pids.slice(nodes).reduce((a, pid) => a + rssKiB(pid), 0);
      note(`the gateway's processes: ${((gatewayAfter - gatewayBefore) / Math.max(1, c.ok)).toFixed(1)} KiB per connection (RSS, summed)`);
    }
    const heapAfter = await Promise.all((sys.nodeUrls ?? []).map(nodeHeap));
    const perConn = (key: keyof Heap) => heapAfter.reduce((a, h, i) => a + (h[key] - heapBefore[i]![key]), 0) / 1024 / Math.max(1, c.ok);
    note(
      `of which per connection: JS heap used ${perConn('used').toFixed(1)} KiB, heap reserved ${perConn('total').toFixed(1)} KiB, external ${perConn('external').toFixed(1)} KiB (the node's own metrics)`,
    );

    const calls = await redisStats(ctx);
    const idle = cpuMeter(ctx, sys);
    await sleep(idleMs);
    const idleCpu = idle();
    const settled = sys.pids.slice(0, nodes).map((pid, i) => (rssKiB(pid) - before[i]!) / Math.max(1, Math.round(c.ok / nodes)));
    note(
      `node memory per connection after the idle ${idleMs / 1000} s: mean ${(settled.reduce((a, b) => a + b, 0) / nodes).toFixed(1)} KiB, worst ${Math.max(...settled).toFixed(1)} KiB`,
    );
    const idleRedis = redisDelta(calls, await redisStats(ctx));
    note(
      `idle: ${sys.config.gateway ? 'nodes and gateway' : 'nodes'} ${Math.round((100 * cpuSeconds(idleCpu.server)) / idleCpu.seconds)} %, Redis ${Math.round((100 * cpuSeconds(idleCpu.redis)) / idleCpu.seconds)} % of a core; Redis calls/s: ${topCalls(idleRedis.calls, idleCpu.seconds)}; ${Math.round(idleRedis.total / idleCpu.seconds)} commands/s, ${(idleRedis.bytes / idleCpu.seconds / 1024).toFixed(0)} KiB/s in all`,
    );

    const publisher = await runnerClient(sys, spec(-1, sys.urls[0]!, 'scale-publisher', { admin: true }));
    try {
      const done = new Map<number, Set<number>>();
      pool.onSeqDone = (w, seq) => done.get(seq)?.add(w);
      const workers = perWorker.filter((s) => s.length > 0).length;
      await pool.all(() => ({ op: 'listen', fanout: true }), 10_000);
      const bcast = cpuMeter(ctx, sys);
      const redisBefore = await redisStats(ctx);
      let timedOut = 0;
      for (let k = 0; k < broadcasts; k++) {
        const seq = 1_000_000 + k;
        done.set(seq, new Set());
        publisher.publish('*', seq, nowUs());
        const complete = await waitUntil(() => done.get(seq)!.size >= workers, BROADCAST_TIMEOUT_MS, 10);
        if (!complete) timedOut++;
        await sleep(1000);
      }
      const bcastCpu = bcast();
      const bcastRedis = redisDelta(redisBefore, await redisStats(ctx));
      const collected = await pool.all<CollectResult>(() => ({ op: 'collect' }), 30_000);
      const delivered = collected.reduce((a, r) => a + r.delivered, 0);
      const lat = summarise(merge(collected.map((r) => r.hist)));
      const drops = collected.reduce((a, r) => a + r.drops, 0);
      if (drops > 0) note(`${drops} clients were disconnected (${[...new Set(collected.flatMap((r) => r.dropSamples))].join('; ')})`);
      // Per delivery, with the idle rate taken off (the second between broadcasts is idle time); never
      // below 0, as Redis's share of a broadcast (one PUBLISH) is within the idle noise.
      const busy = (cpu: number, idleSeconds: number) =>
        (Math.max(0, cpu - (idleSeconds * bcastCpu.seconds) / idleCpu.seconds) * 1e6) / Math.max(1, delivered);
      note(
        `broadcast phase, CPU per delivery: ${sys.config.gateway ? 'nodes and gateway' : 'nodes'} ${busy(cpuSeconds(bcastCpu.server), cpuSeconds(idleCpu.server)).toFixed(1)} µs, Redis ${busy(cpuSeconds(bcastCpu.redis), cpuSeconds(idleCpu.redis)).toFixed(2)} µs, load generator ${((cpuSeconds(bcastCpu.generator) * 1e6) / Math.max(1, delivered)).toFixed(1)} µs; Redis over the phase: ${topCalls(bcastRedis.calls, bcastCpu.seconds)} calls/s`,
      );
      if (timedOut > 0) note(`${timedOut} broadcasts had not reached everyone after ${BROADCAST_TIMEOUT_MS / 1000} s`);
      return {
        rate: c.ok / c.seconds,
        errors: c.errors,
        connectP99: c.latency.p99,
        memKiB: perNode.reduce((a, b) => a + b, 0) / perNode.length,
        memMaxKiB: Math.max(...perNode),
        cpuUsPerConn: (systemCpuSeconds(connectCpu) * 1e6) / c.ok,
        idleCpuPct: (100 * systemCpuSeconds(idleCpu)) / idleCpu.seconds,
        p50: lat.p50,
        p99: lat.p99,
        max: lat.max,
        lossPct: (100 * (broadcasts * c.ok - delivered)) / (broadcasts * c.ok),
        // The second between broadcasts is idle time: take the idle rate off.
        cpuUsPerDelivery:
          ((systemCpuSeconds(bcastCpu) - (systemCpuSeconds(idleCpu) * bcastCpu.seconds) / idleCpu.seconds) * 1e6) / Math.max(1, delivered),
        genCpuPct: (100 * cpuSeconds(connectCpu.generator)) / connectCpu.seconds,
      };
    } finally {
      pool.onSeqDone = null;
      publisher.close();
    }
  } finally {
    ctx.progress.watch(undefined);
    if (pool !== base.pool) {
      await pool.all(() => ({ op: 'close' }), 60_000).catch(() => undefined);
      pool.close();
    }
  }
}

interface Heap {
  used: number;
  total: number;
  external: number;
}

/** A node's V8 heap (used, reserved) and external memory in bytes, from its `/metrics`. */
async function nodeHeap(httpUrl: string): Promise<Heap> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^switchboard_process_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    used: gauge('nodejs_heap_size_used_bytes'),
    total: gauge('nodejs_heap_size_total_bytes'),
    external: gauge('nodejs_external_memory_bytes'),
  };
}
