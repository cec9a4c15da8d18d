import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { MetricsSource } from '../http/server-kit.js';

/**
 * A gateway over several processes (`SWITCHBOARD_GATEWAY_WORKERS`). The primary only forks,
 * watches and answers for the workers; each worker is a whole gateway on the same port.
 *
 * Every worker accepts from the one listening socket (`SCHED_NONE`), rather than the primary
 * accepting and handing each socket over (Node's default): since libuv 1.45 a process accepts one
 * connection per event-loop turn, and a hand-off waits for the busy worker's turn as well, so a
 * loaded gateway accepts at the sum of its workers' turn rates either way; without the hand-off
 * no connection waits on the primary, and no descriptor crosses a pipe.
 */

/** Messages between the primary and its workers (besides prom-client's own). */
const LISTENING = 'switchboard:gateway-listening';
/** A worker's `/metrics` asks the primary for the sum, which asks each listening worker for its own. */
const METRICS_REQUEST = 'switchboard:gateway-metrics';
const METRICS_ANSWER = 'switchboard:gateway-metrics-answer';
const OWN_REQUEST = 'switchboard:gateway-own-metrics';
const OWN_ANSWER = 'switchboard:gateway-own-metrics-answer';

/** A worker that exits this often within `CRASH_WINDOW_MS` is not replaced again: the gateway exits. */
const MAX_RESTARTS = 5;
const CRASH_WINDOW_MS = 30_000;
/** Longest wait for the workers to stop after a signal. */
const STOP_BOUND_MS = 10_000;
/** Longest wait for one worker's own metrics; one that does not answer is left out of the sum. */
const OWN_TIMEOUT_MS = 2000;
/** Longest wait of a worker's `/metrics` for the sum. */
const METRICS_TIMEOUT_MS = 5000;

type Snapshot = MetricObjectWithValues<MetricValue<string>>[];
type PrimaryMessage = { type: typeof METRICS_ANSWER; id: number; text?: string; error?: string } | { type: typeof OWN_REQUEST; id: number };
type WorkerMessage =
  | { type: typeof LISTENING; url: string }
  | { type: typeof METRICS_REQUEST; id: number }
  | { type: typeof OWN_ANSWER; id: number; metrics: Snapshot };

/** A worker exited before it listened; it said why on stderr. */
export class WorkerStartError extends Error {
  constructor(readonly code: number) {
    super(`a gateway worker exited (code ${code}) before it listened`);
  }
}

/** Options of {@link GatewayPrimary}. */
export interface GatewayPrimaryOptions {
  workers: number;
  /** The gateway's id (the `gateway` label of the primary's own metrics). */
  gatewayId: string;
  log: Logger;
  /** Added to each worker's environment. */
  env?: Record<string, string>;
}

/**
 * The primary of a gateway with workers: forks them, replaces one that dies (unless they keep
 * dying), answers a worker's `/metrics` with the sum over all workers plus its own
 * `switchboard_gateway_workers` and `switchboard_gateway_worker_restarts_total`, and on a signal
 * passes it on and waits for every worker to stop.
 */
export class GatewayPrimary {
  private readonly own = new Registry();
  /** Workers that listen (a new one is asked for its metrics only from then on). */
  private readonly listening = new Set<Worker>();
  private readonly snapshots = new Map<number, (metrics: Snapshot) => void>();
  private nextSnapshot = 0;
  private readonly live: Gauge;
  private readonly restarts: Counter;
  private readonly crashes: number[] = [];
  private stopping = false;
  private exited: ((code: number) => void) | undefined;

  constructor(private readonly options: GatewayPrimaryOptions) {
    this.own.setDefaultLabels({ gateway: options.gatewayId });
    this.live = new Gauge({ name: 'switchboard_gateway_workers', help: 'Gateway worker processes running', registers: [this.own] });
    this.restarts = new Counter({
      name: 'switchboard_gateway_worker_restarts_total',
      help: 'Gateway workers that exited unasked and were replaced',
      registers: [this.own],
    });
  }

  /**
   * Forks the workers; resolves with the gateway's URL once every one listens. Rejects when a
   * worker exits before it listens (its own error is on stderr): the options or Redis are wrong,
   * and another worker would fail the same way.
   */
  start(): Promise<string> {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    return new Promise((resolve, reject) => {
      let listening = 0;
      let url = '';
      const starting = new Set<Worker>();
      const onStartExit = (worker: Worker, code: number | null) => {
        if (!starting.has(worker)) return;
        cluster.off('exit', onStartExit);
        this.stopping = true;
        for (const w of running()) w.kill('SIGTERM');
        reject(new WorkerStartError(code ?? 1));
      };
      cluster.on('exit', onStartExit);
      for (let i = 0; i < this.options.workers; i++) {
        const worker = this.fork();
        starting.add(worker);
        worker.on('message', (m: WorkerMessage) => {
          if (m.type !== LISTENING || !starting.has(worker)) return;
          starting.delete(worker);
          url = m.url;
          if (++listening === this.options.workers) {
            cluster.off('exit', onStartExit);
            cluster.on('exit', (w, code, signal) => this.onExit(w, code, signal));
            resolve(url);
          }
        });
      }
    });
  }

  /** Passes `signal` to every worker; resolves with the exit code once all have exited. */
  stop(signal: NodeJS.Signals): Promise<number> {
    this.stopping = true;
    const workers = running();
    if (workers.length === 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      // A worker still running after the bound is killed: the gateway exits 1, said in the log.
      const bound = setTimeout(() => {
        const stuck = running();
        this.options.log.error(
          { workers: stuck.map((w) => w.id) },
          `gateway workers still running ${STOP_BOUND_MS / 1000} s after ${signal}: killed`,
        );
        for (const w of stuck) w.process.kill('SIGKILL');
        resolve(1);
      }, STOP_BOUND_MS);
      this.exited = (code) => {
        clearTimeout(bound);
        resolve(code);
      };
      for (const w of workers) w.process.kill(signal);
    });
  }

  private fork(): Worker {
    const worker = cluster.fork(this.options.env);
    this.live.set(running().length);
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === LISTENING) this.listening.add(worker);
      else if (m.type === METRICS_REQUEST) void this.answerMetrics(worker, m.id);
      else if (m.type === OWN_ANSWER) this.snapshots.get(m.id)?.(m.metrics);
    });
    worker.once('exit', () => this.listening.delete(worker));
    return worker;
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    const left = running().length;
    this.live.set(left);
    if (this.stopping) {
      if (left === 0) this.exited?.(0);
      return;
    }
    const now = Date.now();
    this.crashes.push(now);
    while (this.crashes[0]! < now - CRASH_WINDOW_MS) this.crashes.shift();
    const { log } = this.options;
    if (this.crashes.length > MAX_RESTARTS) {
      log.fatal(
        { worker: worker.id, code, signal },
        `gateway workers exited ${this.crashes.length} times in ${CRASH_WINDOW_MS / 1000} s: stopping`,
      );
      void this.stop('SIGTERM').then(() => process.exit(1));
      return;
    }
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'gateway worker exited; starting another');
    this.restarts.inc();
    this.fork();
  }

  private async answerMetrics(worker: Worker, id: number): Promise<void> {
    let answer: PrimaryMessage;
    try {
      const own = await Promise.all([...this.listening].map((w) => this.ownMetrics(w)));
      const sum = AggregatorRegistry.aggregate(own.filter((m): m is Snapshot => m !== undefined));
      answer = { type: METRICS_ANSWER, id, text: (await sum.metrics()) + (await this.own.metrics()) };
    } catch (err) {
      answer = { type: METRICS_ANSWER, id, error: (err as Error).message };
    }
    if (worker.isConnected()) worker.send(answer);
  }

  /** One worker's own metrics, or undefined when it does not answer in time. */
  private ownMetrics(worker: Worker): Promise<Snapshot | undefined> {
    const id = this.nextSnapshot++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.snapshots.delete(id);
        this.options.log.warn({ worker: worker.id }, 'a gateway worker did not send its metrics in time: left out of /metrics');
        resolve(undefined);
      }, OWN_TIMEOUT_MS);
      this.snapshots.set(id, (metrics) => {
        clearTimeout(timer);
        this.snapshots.delete(id);
        resolve(metrics);
      });
      if (worker.isConnected()) worker.send({ type: OWN_REQUEST, id } satisfies PrimaryMessage);
    });
  }
}

/**
 * A worker's side: the `/metrics` source that asks the primary for the sum over all workers, which
 * includes `registry` (this worker's own).
 */
export function workerMetrics(registry: Registry): MetricsSource {
  let next = 0;
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  process.on('message', (m: PrimaryMessage) => {
    if (m?.type === OWN_REQUEST) {
      void registry.getMetricsAsJSON().then((metrics) => process.send?.({ type: OWN_ANSWER, id: m.id, metrics } satisfies WorkerMessage));
      return;
    }
    if (m?.type !== METRICS_ANSWER) return;
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.text !== undefined) w?.resolve(m.text);
    else w?.reject(new Error(m.error ?? 'no answer from the gateway primary'));
  });
  return {
    contentType: registry.contentType,
    metrics: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`the gateway's workers did not answer within ${METRICS_TIMEOUT_MS} ms`));
        }, METRICS_TIMEOUT_MS);
        waiting.set(id, {
          resolve: (text) => (clearTimeout(timer), resolve(text)),
          reject: (err) => (clearTimeout(timer), reject(err)),
        });
        process.send!({ type: METRICS_REQUEST, id } satisfies WorkerMessage);
      }),
  };
}

/** A worker tells the primary it listens. */
export function announceListening(url: string): void {
  process.send?.({ type: LISTENING, url } satisfies WorkerMessage);
}

/** The workers the cluster still lists (an exited one leaves the list). */
function running(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
}
