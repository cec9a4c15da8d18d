/**
 * Private servers for tests that take their backend away: a redis-server or nats-server of the
 * test's own on a free loopback port, stopped and started again at will, never the shared one.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { eventually } from './eventually.js';
import { freePort } from './ports.js';

/** A free TCP port on 127.0.0.1 (the name the broker tests use for `freePort`). */
export const freeLoopbackPort = freePort;

/** True when something accepts a TCP connection on 127.0.0.1:`port` now. */
function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  await eventually(() => accepts(port), { timeoutMs, intervalMs: 50, message: `a listener on 127.0.0.1:${port}` });
}

/** A server process of the test's own on a fixed port, which survives stop and start. */
export class PrivateServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly binary: string,
    private readonly args: (port: number) => string[],
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** How long the server may take to listen. */
    private readonly startTimeoutMs = 10_000,
  ) {}

  /** Where the binary is, among `candidates`; a missing one fails with how to install it. */
  private static find(name: string, candidates: string[], install: string): string {
    const found = candidates.find((p) => existsSync(p));
    if (!found) throw new Error(`${name} is not installed (${candidates.join(', ')}): ${install}`);
    return found;
  }

  /** A private redis-server (nothing persisted); `extra` are more arguments (`--requirepass`, say). */
  static async redis(extra: string[] = []): Promise<PrivateServer> {
    const binary = PrivateServer.find(
      'redis-server',
      ['/usr/bin/redis-server', '/usr/local/bin/redis-server'],
      'apt-get install redis-server',
    );
    const server = new PrivateServer(await freeLoopbackPort(), binary, (port) => [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...extra,
    ]);
    await server.start();
    return server;
  }

  /** A private nats-server (core NATS). */
  static async nats(): Promise<PrivateServer> {
    const binary = PrivateServer.find(
      'nats-server',
      ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'],
      'apt-get install nats-server',
    );
    const server = new PrivateServer(await freeLoopbackPort(), binary, (port) => ['-a', '127.0.0.1', '-p', String(port)]);
    await server.start();
    return server;
  }

  /**
   * A private RabbitMQ node (its own node name, ports and data directory; durable state survives
   * `stop` and `start`, as on a real restart). Takes about 6 s to boot.
   */
  static async rabbitmq(): Promise<PrivateServer> {
    const binary = PrivateServer.find(
      'rabbitmq-server',
      ['/usr/sbin/rabbitmq-server', '/usr/lib/rabbitmq/bin/rabbitmq-server'],
      'apt-get install rabbitmq-server',
    );
    const port = await freeLoopbackPort();
    const dir = mkdtempSync(join(tmpdir(), 'sbtest-rabbit-'));
    writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.1 = 127.0.0.1:${port}\nloopback_users = none\n`);
    writeFileSync(join(dir, 'plugins'), '');
    // The server drops to the rabbitmq user, which must own its files.
    execFileSync('chown', ['-R', 'rabbitmq:rabbitmq', dir]);
    const env = {
      ...process.env,
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
      RABBITMQ_NODENAME: `sbtest${port}@localhost`,
      RABBITMQ_NODE_PORT: String(port),
      RABBITMQ_DIST_PORT: String(port + 10_000 > 65_000 ? port - 10_000 : port + 10_000),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_FEATURE_FLAGS_FILE: join(dir, 'feature_flags'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'plugins'),
      RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins-expand'),
      RABBITMQ_QUORUM_DIR: join(dir, 'quorum'),
      RABBITMQ_PID_FILE: join(dir, 'pid'),
    };
    const server = new PrivateServer(port, binary, () => [], env, 60_000);
    server.cleanup = () => rmSync(dir, { recursive: true, force: true });
    // The server runs its VM as another user, in a session of its own: stop kills it by its pid file.
    server.extraPid = () => {
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    };
    await server.start();
    return server;
  }

  /** Removes what the server left on disk (after the last `stop`). */
  private cleanup: (() => void) | undefined;
  /** A process the server started outside its process group, killed with it. */
  private extraPid: (() => number | undefined) | undefined;

  /** Starts the process (again) and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.child) return;
    running.add(this);
    // A process group of its own, so that stop reaches what the binary starts (RabbitMQ's VM).
    const child = spawn(this.binary, this.args(this.port), { stdio: 'ignore', env: this.env, detached: true });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await waitForPort(this.port, this.startTimeoutMs);
  }

  /** Kills the process group (SIGKILL: no goodbye to its clients) and waits until the port is free. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let extra: number | undefined;
    try {
      extra = this.extraPid?.();
    } catch {
      extra = undefined; // not written yet
    }
    for (const pid of [-child.pid!, extra]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited;
    await eventually(async () => !(await accepts(this.port)), {
      timeoutMs: 10_000,
      intervalMs: 50,
      message: `127.0.0.1:${this.port} closed`,
    });
  }

  /** Stops the server for good and removes its files. */
  async dispose(): Promise<void> {
    await this.stop();
    running.delete(this);
    this.cleanup?.();
  }

  /** Kills the server at once, without waiting (the test process is exiting). */
  killNow(): void {
    const child = this.child;
    let extra: number | undefined;
    try {
      extra = this.extraPid?.();
    } catch {
      extra = undefined;
    }
    for (const pid of [child ? -child.pid! : undefined, extra]) {
      try {
        if (pid !== undefined) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.cleanup?.();
  }
}

/** Servers started by this test process: none outlives it, even when a test fails or times out. */
const running = new Set<PrivateServer>();
process.once('exit', () => {
  for (const server of running) server.killNow();
});
