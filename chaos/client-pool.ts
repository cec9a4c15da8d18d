/**
 * Recording clients spread over worker processes, for a scenario with thousands of them (the soak).
 *
 * One process holding every client and the publishers fell seconds behind on two cores shared with
 * the cluster and its broker, and then it was the load generator that failed (clients timing out on
 * connect), not the system under test. Each worker holds a share of the clients and tells this side
 * when one connects or drops; the scenario picks its churn victims from that mirror and gets every
 * log at the end, to judge as before. How many workers there are, and at which priority,
 * moves the soak's outcome on two shared cores: see docs/reliability.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import type { Acked, ClientLog } from './checker.js';
import { decodeLogs, type PoolCommand, type PoolEvent, type EncodedLogs } from './pool-wire.js';

/** This side's view of a client held by a worker. */
export class RemoteClient {
  /** As last reported by its worker. */
  connected = false;

  constructor(
    readonly id: string,
    readonly groups: readonly string[],
    private readonly worker: PoolWorker,
  ) {}

  /** Resets its connection under the SDK (as a network drop would); the SDK reconnects. */
  dropConnection(): void {
    this.worker.send({ op: 'drop', id: this.id });
  }

  /** Its groups' channels and its own (judged when it was opened `personal`; extra positions are ignored). */
  get channels(): string[] {
    return [...this.groups.map((g) => `group:${g}`), `user:${this.id}`];
  }

  /** Leaves for good; with `until`, once it has seen what was acknowledged by then (RecordingClient.leaveAfter). */
  leave(until?: { at: number; latest: ReadonlyMap<string, Acked> }): void {
    this.connected = false;
    this.worker.send({ op: 'leave', id: this.id, until: until && { at: until.at, latest: wirePositions(until.latest) } });
  }
}

function wirePositions(latest: ReadonlyMap<string, Acked>): [channel: string, epoch: string, offset: number][] {
  return [...latest.values()].map((a) => [a.channel, a.epoch, a.offset]);
}

type Waiter = { resolve(value: unknown): void; reject(err: Error): void };

/** One worker process and its requests in flight. */
class PoolWorker {
  readonly clients = new Map<string, RemoteClient>();
  private readonly waiting = new Map<number, Waiter>();
  private nextRequest = 0;
  private failure: Error | undefined;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (event: PoolEvent) => this.onEvent(event));
    child.on('exit', (code, signal) => {
      this.failure = new Error(`client worker ${child.pid} exited (${signal ?? code})`);
      for (const w of this.waiting.values()) w.reject(this.failure);
      this.waiting.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(command: PoolCommand): void {
    if (this.failure) throw this.failure;
    this.child.send(command);
  }

  /** Sends a command that the worker answers, and waits for its answer. */
  request<T>(command: PoolCommand): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const req = this.nextRequest++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(req, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ ...command, req });
    });
  }

  private onEvent(event: PoolEvent): void {
    if (event.op === 'state') {
      for (const [id, connected] of event.changes) {
        const client = this.clients.get(id);
        if (client) client.connected = connected;
      }
      return;
    }
    const waiter = this.waiting.get(event.req);
    if (!waiter) return;
    this.waiting.delete(event.req);
    if (event.op === 'failed') waiter.reject(new Error(event.message));
    else waiter.resolve(event.value);
  }

  async stop(): Promise<void> {
    if (this.failure) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    await this.request({ op: 'close' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** What the workers measured of themselves. */
export interface PoolLoad {
  /** The worst event-loop delay of any worker, ms (p99 and max). */
  delayP99Ms: number;
  delayMaxMs: number;
}

/** Clients over `workers` processes; the `i`th client opened goes to worker `i % workers`. */
export class ClientPool {
  private readonly workers: PoolWorker[];
  private placed = 0;

  /**
   * @param nice the workers' scheduling priority: above 0, the CPU the system under test leaves is theirs
   */
  constructor(
    private readonly url: string,
    workers: number,
    nice = 0,
  ) {
    const script = new URL('./client-worker.ts', import.meta.url);
    this.workers = Array.from({ length: workers }, () => {
      // Inherits this process's `--import tsx`; structured clone for the logs' typed arrays.
      const child = fork(script, [], { serialization: 'advanced', stdio: 'inherit' });
      if (child.pid !== undefined && nice !== 0) setPriority(child.pid, nice);
      return new PoolWorker(child);
    });
  }

  get pids(): (number | undefined)[] {
    return this.workers.map((w) => w.pid);
  }

  /** Opens clients (each in its groups, and its own `user:` channel when `personal`) and waits until every one is connected. */
  async open(specs: readonly { id: string; groups: string[] }[], personal: boolean): Promise<RemoteClient[]> {
    const shares = this.workers.map(() => [] as { id: string; groups: string[] }[]);
    const remotes = specs.map((spec) => {
      const worker = this.workers[this.placed % this.workers.length]!;
      shares[this.placed++ % this.workers.length]!.push(spec);
      const remote = new RemoteClient(spec.id, spec.groups, worker);
      worker.clients.set(spec.id, remote);
      return remote;
    });
    await Promise.all(this.workers.map((w, k) => w.request({ op: 'open', url: this.url, clients: shares[k]!, personal })));
    return remotes;
  }

  /** Opens one client without waiting for it (a newcomer during the run). */
  add(id: string, groups: string[], personal: boolean): RemoteClient {
    const worker = this.workers[this.placed++ % this.workers.length]!;
    const remote = new RemoteClient(id, groups, worker);
    worker.clients.set(id, remote);
    worker.send({ op: 'add', url: this.url, id, groups, personal });
    return remote;
  }

  /** How many clients still with us have not seen the latest acknowledged position of each of their channels. */
  async lagging(latest: ReadonlyMap<string, Acked>): Promise<number> {
    const positions = wirePositions(latest);
    const counts = await Promise.all(this.workers.map((w) => w.request<number>({ op: 'lagging', latest: positions })));
    return counts.reduce((n, c) => n + c, 0);
  }

  /** Marks the window whose event-loop delay the workers report (the publishing, not the set-up or the judging). */
  async window(edge: 'start' | 'end'): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ op: 'window', edge })));
  }

  /** Every client's log (those that left included), and the workers' own load. */
  async logs(): Promise<{ logs: ClientLog[]; load: PoolLoad }> {
    const parts = await Promise.all(this.workers.map((w) => w.request<EncodedLogs>({ op: 'logs' })));
    const logs = parts.flatMap((p) => decodeLogs(p));
    return {
      logs,
      load: {
        delayP99Ms: Math.max(...parts.map((p) => p.delayP99Ms)),
        delayMaxMs: Math.max(...parts.map((p) => p.delayMaxMs)),
      },
    };
  }

  /** Closes every client and ends the workers. */
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
