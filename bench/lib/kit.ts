/**
 * What every scenario uses: the context (options, workers, servers, progress line), the rounds
 * loop that runs each system several times in interleaved order, and helpers to connect clients,
 * spread them over source addresses, and publish from the runner.
 */
import { SignJWT } from 'jose';
import { merge, summarise, type LatencySummary } from './hist.js';
import { openClient, type BenchClient } from './clients.js';
import type { WorkerPool } from './pool.js';
import { cpuDelta, cpuTimes, type CpuTime } from './proc.js';
import type { ClientKind, ClientSpec, ConnectResult } from './protocol.js';
import type { MetricDef, RowResult, ScenarioReport } from './report-types.js';
import { BENCH_SECRET, type RunningSystem, type ServerEnv, type SystemConfig } from './systems.js';
import { nowUs, spread, waitUntil, type Spread } from './util.js';

/** Options of one bench invocation. */
export interface BenchOptions {
  quick: boolean;
  runs: number;
  workers: number;
  /** Switchboard clients connect with `?batch=1` (as the SDK does). */
  batch: boolean;
  /** Only these system ids (all when undefined). */
  systems?: string[];
  /** Overrides each scenario's main size (clients, subscribers or pairs). */
  clients?: number;
  /** Overrides each timed phase's length. */
  durationMs?: number;
  /** Fan-out: publications in flight at saturation. */
  window: number;
}

/** Everything a scenario runs with. */
export interface BenchContext {
  opts: BenchOptions;
  pool: WorkerPool;
  env: ServerEnv;
  progress: Progress;
  log(line: string): void;
}

/** A scenario of the suite. */
export interface Scenario {
  name: string;
  /** Number in the issue (1–6). */
  number: number;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioReport[]>;
}

// ---- progress line ---------------------------------------------------------------------------

/** The line that says what is running and how far it got; redrawn in place on a terminal. */
export class Progress {
  private phase = '';
  private timer: NodeJS.Timeout | undefined;
  private lastDelivered = 0;
  private lastAt = Date.now();
  private lastPrinted = 0;
  private readonly tty = Boolean(process.stderr.isTTY);
  /** A scenario's own pool (more workers than the bench's), counted while it runs. */
  private own: WorkerPool | undefined;

  constructor(private readonly pool: WorkerPool) {}

  /** Counts `pool` instead of the bench's own until called again with `undefined`. */
  watch(pool: WorkerPool | undefined): void {
    this.own = pool;
  }

  start(): void {
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  set(phase: string): void {
    this.phase = phase;
    if (!this.tty) process.stderr.write(`bench: ${phase}\n`);
    this.draw();
  }

  private draw(): void {
    const t = (this.own ?? this.pool).totals();
    const now = Date.now();
    const rate = ((t.delivered - this.lastDelivered) * 1000) / Math.max(1, now - this.lastAt);
    this.lastDelivered = t.delivered;
    this.lastAt = now;
    const line = `${this.phase} | clients ${t.connected} | delivered ${t.delivered}${rate > 0 ? ` (${Math.round(rate)}/s)` : ''} | errors ${t.errors}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
    else if (now - this.lastPrinted >= 5000) {
      process.stderr.write(`  ${line}\n`);
      this.lastPrinted = now;
    }
  }

  /** Ends the line so that later output starts on its own. */
  stop(): void {
    clearInterval(this.timer);
    if (this.tty) process.stderr.write('\n');
  }
}

// ---- rounds ---------------------------------------------------------------------------------

/** What a rounds loop gathered for one system. */
export interface SystemRuns {
  config: SystemConfig;
  runs: Record<string, number>[];
  errors: string[];
  notes: string[];
}

/**
 * Runs `measure` for every system, `runs` times, interleaved (A B C, A B C, …) so that drift of a
 * shared machine spreads over all systems instead of favouring whichever ran first. Each run gets
 * fresh server processes; a failed run is recorded, not fatal.
 */
export async function rounds(
  ctx: BenchContext,
  label: string,
  systems: SystemConfig[],
  measure: (sys: RunningSystem, note: (text: string) => void) => Promise<Record<string, number>>,
): Promise<SystemRuns[]> {
  const selected = selectSystems(ctx, systems);
  const out = selected.map((config) => ({ config, runs: [] as Record<string, number>[], errors: [] as string[], notes: [] as string[] }));
  for (let r = 0; r < ctx.opts.runs; r++) {
    for (const entry of out) {
      ctx.progress.set(`${label}: ${entry.config.label}, run ${r + 1}/${ctx.opts.runs}`);
      let sys: RunningSystem | undefined;
      try {
        sys = await ctx.env.start(entry.config);
        entry.runs.push(await measure(sys, (text) => entry.notes.includes(text) || entry.notes.push(text)));
      } catch (err) {
        const message = (err as Error).message.split('\n')[0]!;
        ctx.log(`${label}: ${entry.config.label} run ${r + 1} failed: ${(err as Error).message}`);
        entry.errors.push(`run ${r + 1}: ${message}`);
        entry.runs.push({});
      } finally {
        await closeClients(ctx).catch(() => undefined);
        await sys?.stop();
      }
    }
  }
  return out;
}

/** The systems of a scenario that `--systems` keeps, and that can run here (Redis, nats-server, RabbitMQ). */
export function selectSystems(ctx: BenchContext, systems: SystemConfig[]): SystemConfig[] {
  const keep = ctx.opts.systems;
  const out = keep ? systems.filter((s) => keep.includes(s.id)) : systems;
  return out.filter((s) => ctx.env.unavailable(s) === undefined);
}

/** Why systems were left out (to say so in the report). */
export function skippedNotes(ctx: BenchContext, systems: SystemConfig[]): string[] {
  const why = new Map<string, string[]>();
  for (const s of systems) {
    if (ctx.opts.systems && !ctx.opts.systems.includes(s.id)) continue;
    const reason = ctx.env.unavailable(s);
    if (reason) why.set(reason, [...(why.get(reason) ?? []), s.label]);
  }
  return [...why].map(([reason, labels]) => `Not run: ${labels.join(', ')} — ${reason}.`);
}

/**
 * Builds a report table from rounds: medians, ranges and the paired ratio to each row's baseline;
 * with `peerOf`, also the paired ratio to a second row (e.g. Socket.IO + Redis for the clustered
 * Switchboard rows).
 */
export function tabulate(
  base: Omit<ScenarioReport, 'rows' | 'notes'> & { notes?: string[] },
  results: SystemRuns[],
  baselineOf: (config: SystemConfig) => string = () => 'switchboard',
  peerOf?: (config: SystemConfig) => string | undefined,
): ScenarioReport {
  const rows: RowResult[] = results.map((r) => {
    const summary: Record<string, Spread> = {};
    for (const m of base.metrics) summary[m.key] = spread(r.runs.map((run) => run[m.key] ?? NaN));
    return {
      id: r.config.id,
      label: r.config.label,
      family: r.config.family,
      baseline: baselineOf(r.config),
      runs: r.runs,
      summary,
      ratio: {},
      errors: r.errors,
    };
  });
  /** `row` ÷ `by`, metric by metric, paired run by run (the same round). */
  const paired = (row: RowResult, by: RowResult | undefined): Record<string, Spread> => {
    const out: Record<string, Spread> = {};
    for (const m of base.metrics) {
      const ratios: number[] = [];
      if (by) {
        row.runs.forEach((run, i) => {
          const v = run[m.key];
          const b = by.runs[i]?.[m.key];
          if (v !== undefined && b !== undefined && Number.isFinite(v) && Number.isFinite(b) && b !== 0) ratios.push(v / b);
        });
      }
      out[m.key] = spread(ratios);
    }
    return out;
  };
  results.forEach((r, i) => {
    const row = rows[i]!;
    row.ratio = paired(
      row,
      rows.find((x) => x.id === row.baseline),
    );
    const peerId = peerOf?.(r.config);
    const peer = peerId !== undefined && peerId !== row.id ? rows.find((x) => x.id === peerId) : undefined;
    if (peer) row.peer = { id: peer.id, label: peer.label, ratio: paired(row, peer) };
  });
  const notes = [...(base.notes ?? [])];
  for (const r of results) for (const n of r.notes) notes.push(`${r.config.label}: ${n}`);
  return { ...base, rows, notes };
}

// ---- clients ----------------------------------------------------------------------------------

let addressCounter = Math.floor(Math.random() * 253);

/**
 * The next source address, 127.0.0.2–127.0.0.254 in turn. Each address has its own ephemeral port
 * range, so tens of thousands of connections (and the TIME_WAIT they leave behind from the
 * previous run) never run out of ports.
 */
export function nextAddress(): string {
  addressCounter = (addressCounter + 1) % 253;
  return `127.0.0.${addressCounter + 2}`;
}

/** A client spec on node `url`. */
export function spec(idx: number, url: string, user: string, extra: Partial<ClientSpec> = {}): ClientSpec {
  return { idx, url, user, localAddress: nextAddress(), ...extra };
}

/**
 * A user name that lands on node `node` of `sys`: `base` itself when clients pick their node by
 * URL; through a gateway, the first of `base`, `base-1`, `base-2`, … that the gateway places on
 * that node, so a scenario keeps the same layout (e.g. sender on node 1, receiver on node 2).
 */
export function userOn(sys: RunningSystem, base: string, node: number): string {
  if (!sys.nodeOf) return base;
  for (let k = 0; k < 1000; k++) {
    const user = k === 0 ? base : `${base}-${k}`;
    if (sys.nodeOf(user) === node % sys.config.nodes) return user;
  }
  throw new Error(`no user name like ${base} lands on node ${node + 1}`);
}

/** Totals of a connect phase over all workers. */
export interface ConnectTotals {
  ok: number;
  errors: number;
  errorSamples: string[];
  /** First attempt to last client usable, seconds. */
  seconds: number;
  latency: LatencySummary;
}

/** Connects each worker's share of clients; `concurrency` is the total number of attempts in flight. */
export async function connectAll(
  ctx: BenchContext,
  kind: ClientKind,
  perWorker: ClientSpec[][],
  opts: { concurrency?: number; timeoutMs?: number } = {},
): Promise<ConnectTotals> {
  const active = perWorker.filter((s) => s.length > 0).length || 1;
  const concurrency = Math.max(1, Math.floor((opts.concurrency ?? 500) / active));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const results = await ctx.pool.all<ConnectResult>(
    (i) =>
      perWorker[i]?.length
        ? { op: 'connect', specs: perWorker[i]!, kind, secret: BENCH_SECRET, batch: ctx.opts.batch, timeoutMs, concurrency }
        : null,
    timeoutMs * Math.ceil((perWorker.reduce((n, s) => Math.max(n, s.length), 0) + 1) / concurrency) + 60_000,
  );
  const samples = [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 5);
  const first = Math.min(...results.map((r) => r.firstStartUs));
  const last = Math.max(...results.map((r) => r.lastReadyUs));
  return {
    ok: results.reduce((n, r) => n + r.ok, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    errorSamples: samples,
    seconds: (last - first) / 1e6,
    latency: summarise(merge(results.map((r) => r.hist))),
  };
}

/** Closes every client of every worker. */
export async function closeClients(ctx: BenchContext): Promise<void> {
  await ctx.pool.all(() => ({ op: 'close' }), 30_000);
}

/**
 * Opens and closes a few connections before measuring, so one-time costs (lazy imports, JIT
 * warm-up of the handshake path) are not charged to the first measured client of any system.
 */
export async function warmUp(ctx: BenchContext, sys: RunningSystem, n = 100): Promise<void> {
  const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
  for (let i = 0; i < n; i++) perWorker[i % ctx.pool.size]!.push(spec(i, sys.urls[i % sys.urls.length]!, `warm${i}`));
  await connectAll(ctx, sys.config.kind, perWorker, { concurrency: 50 });
  await closeClients(ctx);
}

/** Opens one client in the runner itself (the fan-out publisher). */
export async function runnerClient(sys: RunningSystem, s: ClientSpec): Promise<BenchClient> {
  const token =
    sys.config.kind === 'switchboard'
      ? await new SignJWT(s.admin ? { role: 'admin' } : {})
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
          .setSubject(s.user)
          .setExpirationTime(Math.floor(Date.now() / 1000) + 7200)
          .sign(new TextEncoder().encode(BENCH_SECRET))
      : undefined;
  const client = openClient(
    sys.config.kind,
    s,
    { onDelivery: () => undefined, onServerError: () => undefined, onDrop: () => undefined },
    { token, batch: true, timeoutMs: 30_000 },
  );
  await client.ready;
  return client;
}

/** CPU used by the servers, the private Redis, the broker and the load generator over a stretch of time. */
export interface CpuWindow {
  server: CpuTime;
  redis: CpuTime;
  /**
   * The broker between nodes when it is not the Redis: the private nats-server, or the shared
   * RabbitMQ server's Erlang VM (all of it). Zero for the other systems.
   */
  broker: CpuTime;
  generator: CpuTime;
  seconds: number;
}

/** Starts measuring; the returned function ends the window and gives what each part used. */
export function cpuMeter(ctx: BenchContext, sys: RunningSystem): () => CpuWindow {
  const redis = sys.config.redis && ctx.env.redisPid ? [ctx.env.redisPid] : [];
  const broker = ctx.env.brokerPids(sys.config);
  const gen = ctx.pool.pids;
  const before = { server: cpuTimes(sys.pids), redis: cpuTimes(redis), broker: cpuTimes(broker), generator: cpuTimes(gen), at: nowUs() };
  return () => ({
    server: cpuDelta(before.server, cpuTimes(sys.pids)),
    redis: cpuDelta(before.redis, cpuTimes(redis)),
    broker: cpuDelta(before.broker, cpuTimes(broker)),
    generator: cpuDelta(before.generator, cpuTimes(gen)),
    seconds: (nowUs() - before.at) / 1e6,
  });
}

/** Total seconds of a CPU time. */
export function cpuSeconds(c: CpuTime): number {
  return c.user + c.system;
}

/** Seconds the servers, the Redis and the broker used together: the system's CPU. */
export function systemCpuSeconds(c: CpuWindow): number {
  return cpuSeconds(c.server) + cpuSeconds(c.redis) + cpuSeconds(c.broker);
}

/** Waits until the workers report `n` connected clients in total (bounded). */
export function waitConnected(ctx: BenchContext, n: number, ms: number): Promise<boolean> {
  return waitUntil(() => ctx.pool.totals().connected >= n, ms, 50);
}

/** Common metric definitions. */
export const METRIC = {
  errors: { key: 'errors', label: 'errors', unit: '', better: 'lower' },
  serverCpu: { key: 'cpuUsPerMsg', label: 'server CPU per message', unit: 'µs', better: 'lower' },
  generator: { key: 'genCpuPct', label: 'load generator CPU', unit: '% of a core', better: 'none' },
} satisfies Record<string, MetricDef>;
