/**
 * The runner's side of the load generator: forks the worker processes, sends them commands, and
 * keeps the running totals for the progress line.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command, WorkerEvent } from './protocol.js';
import { withTimeout } from './util.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** Distributive Omit, so each command keeps its own fields. */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type CommandBody = Without<Command, 'id'>;

/** A fixed set of load-generator processes. */
export class WorkerPool {
  readonly workers: ChildProcess[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Latest progress of each worker. */
  readonly progress: { connected: number; delivered: number; errors: number }[] = [];
  /** Called for fan-out completions. */
  onSeqDone: ((worker: number, seq: number) => void) | null = null;

  constructor(count: number) {
    const entry = fileURLToPath(new URL('./worker.ts', import.meta.url));
    for (let i = 0; i < count; i++) {
      const child = fork(entry, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      this.progress.push({ connected: 0, delivered: 0, errors: 0 });
      child.on('message', (event: WorkerEvent) => this.onEvent(i, event));
      child.on('exit', (code, signal) => {
        for (const [id, p] of this.pending) {
          p.reject(new Error(`load-generator worker ${i} exited (${signal ?? code}) during command ${id}`));
          this.pending.delete(id);
        }
      });
      this.workers.push(child);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Process ids of the workers (their CPU time is read from /proc too). */
  get pids(): number[] {
    return this.workers.map((w) => w.pid!).filter(Boolean);
  }

  private onEvent(worker: number, event: WorkerEvent): void {
    if (event.type === 'result') {
      const p = this.pending.get(event.id);
      if (!p) return;
      this.pending.delete(event.id);
      if (event.error) p.reject(new Error(`worker ${worker}: ${event.error}`));
      else p.resolve(event.result);
    } else if (event.type === 'progress') {
      this.progress[worker] = { connected: event.connected, delivered: event.delivered, errors: event.errors };
    } else if (event.type === 'seq-done') {
      this.onSeqDone?.(worker, event.seq);
    }
  }

  /** Sends one command to worker `i`; rejects when it takes longer than `timeoutMs`. */
  request<T>(i: number, body: CommandBody, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.workers[i]!.send({ ...body, id } as Command);
    });
    return withTimeout(promise, timeoutMs, `worker ${i} ${body.op}`).finally(() => this.pending.delete(id));
  }

  /** Sends a command to every worker (built per worker) and waits for all answers. */
  all<T>(body: (i: number) => CommandBody | null, timeoutMs: number): Promise<T[]> {
    const calls: Promise<T>[] = [];
    for (let i = 0; i < this.workers.length; i++) {
      const b = body(i);
      if (b) calls.push(this.request<T>(i, b, timeoutMs));
    }
    return Promise.all(calls);
  }

  /** Totals over the workers. */
  totals(): { connected: number; delivered: number; errors: number } {
    return this.progress.reduce(
      (a, p) => ({ connected: a.connected + p.connected, delivered: a.delivered + p.delivered, errors: a.errors + p.errors }),
      { connected: 0, delivered: 0, errors: 0 },
    );
  }

  /** Ends the workers (they also exit on their own when the IPC channel closes). */
  close(): void {
    for (const w of this.workers) {
      if (w.connected) w.disconnect();
    }
  }
}

/** Deals `items` round-robin into `n` near-equal shares. */
export function shares<T>(items: T[], n: number): T[][] {
  const out: T[][] = Array.from({ length: n }, () => []);
  items.forEach((item, i) => out[i % n]!.push(item));
  return out;
}
