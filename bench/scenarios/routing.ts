/**
 * Scenario 6, routing strategies: the same point-to-point traffic (every user sends to random
 * users, wherever they are) on 1, 2 and 3 nodes, with Switchboard's `interest`, `broadcast` and
 * `hash` routing, and Socket.IO's Redis adapter for reference. The figure is CPU time (all nodes,
 * and nodes + Redis) per delivered message: what a strategy costs the cluster as it grows.
 * With `hash`, each user connects to the node that owns it (asked with `GET /v1/route`, as the
 * gateway's hash policy does); with the others, users are dealt to the nodes in turn.
 */
import { merge, summarise } from '../lib/hist.js';
import { connectAll, cpuMeter, cpuSeconds, rounds, skippedNotes, spec, tabulate, type BenchContext, type Scenario } from '../lib/kit.js';
import type { ClientSpec, CollectResult, SendResult } from '../lib/protocol.js';
import { BENCH_API_KEY, socketioCluster, switchboardCluster, type RunningSystem, type SystemConfig } from '../lib/systems.js';
import { redisDelta, redisStats, topCalls } from '../lib/redis-stats.js';
import { describeStalls, readStalls } from '../lib/stalls.js';
import { nowUs, sleep } from '../lib/util.js';

export const routing: Scenario = {
  name: 'routing',
  number: 6,
  title: 'Routing strategies',
  async run(ctx) {
    const users = ctx.opts.clients ?? (ctx.opts.quick ? 300 : 3000);
    const rate = ctx.opts.quick ? 1000 : 2000;
    const durationMs = ctx.opts.durationMs ?? (ctx.opts.quick ? 2000 : 10_000);
    const systems: SystemConfig[] = [];
    // Quick: 2 and 3 nodes only (on one node the strategies do the same work), to stay within CI time.
    for (const nodes of ctx.opts.quick ? [2, 3] : [1, 2, 3])
      systems.push(
        switchboardCluster(nodes, 'interest'),
        switchboardCluster(nodes, 'broadcast'),
        switchboardCluster(nodes, 'hash'),
        socketioCluster(nodes),
      );
    const results = await rounds(ctx, `routing ${users} users`, systems, (sys, note) =>
      runOnce(ctx, sys, users, rate, durationMs, ctx.opts.quick, note),
    );
    return [
      tabulate(
        {
          name: 'routing',
          scenario: 'routing',
          title: `6. Routing strategies: CPU per delivered message on 1, 2, 3 nodes`,
          what: `${users.toLocaleString('en')} users spread over the nodes (dealt in turn; with \`hash\`, each on the node that owns it by \`GET /v1/route\`, as the gateway's hash policy connects them); together they send ${rate.toLocaleString('en')} messages/s for ${durationMs / 1000} s, each to a random user. CPU = utime + stime of the node processes (and of redis-server) over the phase, divided by messages delivered. Redis commands (those a Lua script runs included, \`INFO commandstats\`) and bytes (in and out, \`INFO stats\`) per delivered message, with Redis's background (presence renewals, the registry) over 5 idle seconds before the phase, one renewal period, taken off at its rate, command by command. Ratios are to Switchboard interest routing on the same number of nodes.`,
          size: `${users.toLocaleString('en')} users, ${rate.toLocaleString('en')} msg/s, ${durationMs / 1000} s`,
          metrics: [
            { key: 'nodesUsPerMsg', label: 'node CPU per message', unit: 'µs', better: 'lower' },
            { key: 'totalUsPerMsg', label: 'nodes + Redis CPU per message', unit: 'µs', better: 'lower' },
            { key: 'deliveredPerS', label: 'delivered/s', unit: 'msg/s', better: 'higher' },
            { key: 'p50', label: 'latency p50', unit: 'ms', better: 'lower' },
            { key: 'p99', label: 'latency p99', unit: 'ms', better: 'lower' },
            { key: 'redisCallsPerMsg', label: 'Redis commands per message', unit: '', better: 'lower' },
            { key: 'redisBytesPerMsg', label: 'Redis bytes per message', unit: 'B', better: 'lower' },
          ],
          primary: 'nodesUsPerMsg',
          notes: skippedNotes(ctx, systems),
        },
        results,
        (c) => switchboardCluster(c.nodes, 'interest').id,
      ),
    ];
  },
};

async function runOnce(
  ctx: BenchContext,
  sys: RunningSystem,
  users: number,
  rate: number,
  durationMs: number,
  quick: boolean,
  note: (s: string) => void,
): Promise<Record<string, number>> {
  const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
  const names: string[] = [];
  for (let i = 0; i < users; i++) names.push(`m${i}`);
  const home = sys.config.routing === 'hash' ? await owners(sys, names) : names.map((_, i) => sys.urls[i % sys.urls.length]!);
  names.forEach((name, i) => perWorker[i % ctx.pool.size]!.push(spec(i, home[i]!, name)));
  const c = await connectAll(ctx, sys.config.kind, perWorker);
  if (c.errors > 0) note(`${c.errors} clients failed to connect (${c.errorSamples.join('; ')})`);
  const workers = perWorker.filter((s) => s.length > 0).length;
  const send = async (r: number, ms: number) => {
    const startAtUs = nowUs() + 100_000;
    const out = await ctx.pool.all<SendResult>(
      (i) => (i < workers ? { op: 'send-rate', rate: r / workers, durationMs: ms, startAtUs, random: names } : null),
      ms + 40_000,
    );
    return out.reduce((n, x) => n + x.sent, 0);
  };
  // Warm-up at half the rate, long enough for the JIT to settle on the hot path.
  await send(rate / 2, quick ? 1000 : 2000);
  await sleep(500);
  // Redis's own background (presence renewals, the registry): its commands over an idle spell of
  // one renewal period (a third of the 15 s lease), so that it holds each node's renewal once; the
  // phase's counters are read when its 10 s of sending end, two periods.
  const idleFrom = await redisStats(ctx);
  const idleAt = nowUs();
  await sleep(RENEWAL_PERIOD_MS);
  const idle = redisDelta(idleFrom, await redisStats(ctx));
  const idleSeconds = (nowUs() - idleAt) / 1e6;
  await ctx.pool.all(() => ({ op: 'listen', fanout: false }), 10_000);
  const redisFrom = await redisStats(ctx);
  const meter = cpuMeter(ctx, sys);
  const phaseAt = nowUs();
  const phaseFromMs = Date.now();
  const sent = await send(rate, durationMs);
  const phaseToMs = Date.now();
  const phase = redisDelta(redisFrom, await redisStats(ctx));
  const phaseSeconds = (nowUs() - phaseAt) / 1e6;
  await sleep(1000);
  const cpu = meter();
  const collected = await ctx.pool.all<CollectResult>(() => ({ op: 'collect' }), 10_000);
  const delivered = collected.reduce((n, r) => n + r.delivered, 0);
  if (delivered < sent) note(`${sent - delivered} of ${sent} messages not delivered in one run`);
  const latency = summarise(merge(collected.map((r) => r.hist)));
  const nodes = cpuSeconds(cpu.server);
  const total = nodes + cpuSeconds(cpu.redis);
  const background = phaseSeconds / idleSeconds;
  const commands = new Map([...phase.calls].map(([name, n]) => [name, Math.max(0, n - (idle.calls.get(name) ?? 0) * background)]));
  note(`${sys.config.nodes} node(s): Redis commands per message: ${topCalls(commands, Math.max(1, delivered), 6, 2)}`);
  const traceDir = ctx.env.loopTraceDir;
  const stalls = traceDir ? readStalls(traceDir, sys.pids, phaseFromMs, phaseToMs) : undefined;
  if (stalls) note(`${sys.config.nodes} node(s): ${describeStalls(stalls, (phaseToMs - phaseFromMs) / 1000)}`);
  return {
    redisCallsPerMsg: [...commands.values()].reduce((a, b) => a + b, 0) / Math.max(1, delivered),
    redisBytesPerMsg: Math.max(0, phase.bytes - idle.bytes * background) / Math.max(1, delivered),
    nodesUsPerMsg: (nodes * 1e6) / Math.max(1, delivered),
    totalUsPerMsg: (total * 1e6) / Math.max(1, delivered),
    deliveredPerS: delivered / (durationMs / 1000),
    p50: latency.p50,
    p99: latency.p99,
  };
}

/** Each user's owner node by the cluster's hash ring, once every node sees every other. */
async function owners(sys: RunningSystem, users: string[]): Promise<string[]> {
  const http = sys.urls.map((u) => u.replace(/^ws/, 'http'));
  const get = async (url: string) => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${BENCH_API_KEY}` }, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  // The ring is built from the registry; until every node lists every node, owners could still move.
  const ready = await waitUntilAsync(async () => {
    const lists = await Promise.all(http.map((u) => get(`${u}/v1/nodes`)));
    return lists.every((l) => (l.nodes as unknown[]).length === http.length);
  }, 20_000);
  if (!ready) throw new Error(`the ${http.length} nodes did not all see each other within 20 s`);
  const byHttp = new Map(http.map((h, i) => [h, sys.urls[i]!]));
  const out: string[] = new Array(users.length);
  let next = 0;
  const lane = async () => {
    while (next < users.length) {
      const i = next++;
      const route = await get(`${http[0]}/v1/route?user=${encodeURIComponent(users[i]!)}`);
      const url = byHttp.get(String(route.url).replace(/\/$/, ''));
      if (!url) throw new Error(`GET /v1/route answered ${String(route.url)}, which is not a node of this run`);
      out[i] = url;
    }
  };
  await Promise.all(Array.from({ length: 20 }, lane));
  return out;
}

/** How often a node renews its presence leases with the default lease of 15 s. */
const RENEWAL_PERIOD_MS = 5000;

async function waitUntilAsync(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}
