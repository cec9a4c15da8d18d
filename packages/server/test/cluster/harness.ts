/**
 * Cluster test harness: real `switchboard node` processes on loopback ports, on the real Redis,
 * each cluster under a Redis key prefix of its own (deleted afterwards).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { API_KEY, SECRET, type TestNode } from '../helpers.js';
import { freePort } from '../support/ports.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** One node process. */
export interface NodeProcess extends TestNode {
  id: string;
  port: number;
  child: ChildProcess;
  stderr: () => string;
  /** What it logged on stdout, from its start (not kept at `SWITCHBOARD_LOG_LEVEL` info). */
  stdout: () => string;
  /** SIGKILL, no drain: the node's leases must expire for the cluster to notice. */
  kill9(): Promise<void>;
}

export { freePort, freeConsecutivePorts } from '../support/ports.js';

/** A set of nodes sharing one Redis prefix. */
export class Cluster {
  readonly prefix = `sbtest:${randomUUID().slice(0, 8)}:`;
  readonly nodes: NodeProcess[] = [];

  constructor(private readonly env: Record<string, string> = {}) {}

  /** Starts a node process and waits until it listens. */
  async start(id: string, env: Record<string, string> = {}): Promise<NodeProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'node', '--port', String(port), '--node-id', id], {
      env: {
        ...process.env,
        SWITCHBOARD_ENGINE: 'redis',
        REDIS_URL,
        SWITCHBOARD_REDIS_PREFIX: this.prefix,
        SWITCHBOARD_JWT_SECRET: SECRET,
        SWITCHBOARD_API_KEY: API_KEY,
        SWITCHBOARD_LOG_LEVEL: 'warn',
        ...this.env,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    // Its log lines, kept unless the level is info (one line per session would pile up): at warn,
    // what went wrong; at debug or trace, what a test asked for.
    let out = '';
    const level = env.SWITCHBOARD_LOG_LEVEL ?? this.env.SWITCHBOARD_LOG_LEVEL ?? 'warn';
    if (level !== 'info') child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    else child.stdout!.resume();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 15_000;
    // The banner names the node's advertised URL: its own, or the public one it was given.
    const banner = `on ${env.SWITCHBOARD_PUBLIC_URL ?? this.env.SWITCHBOARD_PUBLIC_URL ?? `http://127.0.0.1:${port}`}`;
    while (!err.includes(banner)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`node ${id} did not start (exit ${child.exitCode}): ${err}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = `http://127.0.0.1:${port}`;
    const node: NodeProcess = {
      id,
      port,
      child,
      url,
      wsUrl: `ws://127.0.0.1:${port}/ws`,
      logs: [],
      stderr: () => err,
      stdout: () => out,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
      },
      kill9: async () => {
        child.kill('SIGKILL');
        await exited;
      },
      // TestNode's `node` (the in-process SwitchboardNode) does not exist for a process.
      node: undefined as never,
    };
    this.nodes.push(node);
    return node;
  }

  /** Stops every node and deletes the cluster's Redis keys. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    const redis = new Redis(REDIS_URL);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
  }
}
