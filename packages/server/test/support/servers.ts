/**
 * Private servers for tests that take their backend away: a redis-server or nats-server of the
 * test's own on a free loopback port, stopped and started again at will, never the shared one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { eventually } from './eventually.js';
import { freePort } from './ports.js';

/** A free TCP port on 127.0.0.1 (the name the broker tests use for `freePort`). */
export const freeLoopbackPort = freePort;

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  await eventually(accepts, { timeoutMs, intervalMs: 50, message: `a listener on 127.0.0.1:${port}` });
}

/** A server process of the test's own on a fixed port, which survives stop and start. */
export class PrivateServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly binary: string,
    private readonly args: (port: number) => string[],
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

  /** Starts the process (again) and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.child) return;
    const child = spawn(this.binary, this.args(this.port), { stdio: 'ignore' });
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    await waitForPort(this.port);
  }

  /** Kills the process (SIGKILL: no goodbye to its clients) and waits for it to be gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
