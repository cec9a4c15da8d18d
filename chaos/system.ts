/**
 * The system a chaos scenario runs against: three real `switchboard node` processes on Redis (a
 * key prefix of their own) with the broker under test, a `switchboard gateway` process in front, and
 * a TCP proxy between the clients and the gateway that can cut or blackhole their connections.
 * Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { API_KEY, SECRET } from '../packages/server/test/helpers.js';
import { Cluster, REDIS_URL, freePort, type NodeProcess } from '../packages/server/test/cluster/harness.js';
import { PrivateServer } from '../packages/server/test/support/servers.js';

export { API_KEY };

const BIN = fileURLToPath(new URL('../packages/server/bin/switchboard.js', import.meta.url));

/** The brokers a run may use. */
export type BrokerName = 'redis' | 'nats' | 'rabbitmq';

/** A TCP proxy: passes bytes, or cuts every connection, or stops forwarding (a blackhole). */
export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<[Socket, Socket]>();
  private mode: 'pass' | 'refuse' | 'blackhole' = 'pass';
  port = 0;

  constructor(private readonly target: () => number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      if (this.mode === 'refuse') return void client.destroy();
      const upstream = netConnect(this.target(), '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          if (this.mode !== 'blackhole') to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Resets every connection and refuses new ones until {@link pass}. */
  cut(): void {
    this.mode = 'refuse';
    for (const [a, b] of this.pairs) {
      a.resetAndDestroy();
      b.destroy();
    }
  }

  /** Keeps connections open but forwards nothing (half-open clients, a silent network). */
  blackhole(): void {
    this.mode = 'blackhole';
  }

  pass(): void {
    this.mode = 'pass';
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

/** Systems started and not yet stopped, for {@link stopAll}. */
const running = new Set<System>();

/** Stops every running system (a run interrupted by a signal leaves no process behind). */
export async function stopAll(): Promise<void> {
  await Promise.allSettled([...running].map((s) => s.stop()));
}

/** Options of a system. */
export interface SystemOptions {
  broker: BrokerName;
  /** Extra node environment (history size, heartbeat…). */
  env?: Record<string, string>;
  /** Run the cluster on a private redis-server (so a scenario may restart it). */
  privateRedis?: boolean;
  /**
   * Put this node behind a TCP proxy of its own (its advertised URL is the proxy's), so a scenario
   * can blackhole it: the gateway's probes and upgrades and its clients' links go silent while the
   * node itself runs on, with its Redis and broker.
   */
  proxiedNode?: string;
}

/** Three nodes, a gateway and a client proxy. */
export class System {
  cluster!: Cluster;
  gateway!: ChildProcess;
  gatewayPort = 0;
  /** What the gateway wrote on stderr (its banner, warnings), for an error message. */
  private gatewayErr = '';
  readonly proxy: TcpProxy;
  /** The proxy in front of {@link SystemOptions.proxiedNode}. */
  nodeProxy: TcpProxy | undefined;
  nodes: NodeProcess[] = [];
  redis: PrivateServer | undefined;
  broker: PrivateServer | undefined;
  constructor(private readonly options: SystemOptions) {
    this.proxy = new TcpProxy(() => this.gatewayPort);
  }

  /** The URL clients connect to (through the proxy). */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.proxy.port}/ws`;
  }

  /** The gateway's own URL (no proxy: for thousands of clients, whose proxy would double the descriptors). */
  get gatewayWsUrl(): string {
    return `ws://127.0.0.1:${this.gatewayPort}/ws`;
  }

  /** The nodes still running. */
  live(): NodeProcess[] {
    return this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  }

  /** Starts it all; on a failure, stops whatever had started and throws. */
  async start(): Promise<void> {
    running.add(this);
    try {
      await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startAll(): Promise<void> {
    const env: Record<string, string> = {
      SWITCHBOARD_PRESENCE_TTL_MS: '3000',
      SWITCHBOARD_RATE_LIMIT_PER_SECOND: '10000',
      SWITCHBOARD_RATE_LIMIT_BURST: '10000',
      ...this.options.env,
    };
    let redisUrl = REDIS_URL;
    if (this.options.privateRedis) {
      this.redis = await PrivateServer.redis();
      redisUrl = `redis://127.0.0.1:${this.redis.port}`;
      env.REDIS_URL = redisUrl;
    }
    env.SWITCHBOARD_BROKER = this.options.broker;
    if (this.options.broker === 'nats') {
      this.broker = await PrivateServer.nats();
      env.NATS_URL = `nats://127.0.0.1:${this.broker.port}`;
    } else if (this.options.broker === 'rabbitmq') {
      this.broker = await PrivateServer.rabbitmq();
      env.AMQP_URL = `amqp://guest:guest@127.0.0.1:${this.broker.port}`;
    }
    this.cluster = new Cluster(env);
    let proxiedPort = 0;
    const proxied = this.options.proxiedNode;
    if (proxied) {
      this.nodeProxy = new TcpProxy(() => proxiedPort);
      await this.nodeProxy.start();
    }
    this.nodes = await Promise.all(
      ['c1', 'c2', 'c3'].map(async (id) => {
        if (id !== proxied) return this.cluster.start(id);
        const node = await this.cluster.start(id, { SWITCHBOARD_PUBLIC_URL: `http://127.0.0.1:${this.nodeProxy!.port}` });
        proxiedPort = node.port;
        return node;
      }),
    );
    this.gatewayPort = await freePort();
    this.gateway = spawn(process.execPath, [BIN, 'gateway', '--port', String(this.gatewayPort), '--node-id', 'chaos-gw'], {
      env: {
        ...process.env,
        ...env,
        REDIS_URL: redisUrl,
        SWITCHBOARD_REDIS_PREFIX: this.cluster.prefix,
        SWITCHBOARD_JWT_SECRET: SECRET,
        SWITCHBOARD_API_KEY: API_KEY,
        SWITCHBOARD_ENGINE: 'redis',
        SWITCHBOARD_GATEWAY_PROBE_INTERVAL_MS: '250',
        SWITCHBOARD_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.gateway.stderr!.on('data', (d: Buffer) => (this.gatewayErr += d.toString()));
    await this.untilAsync(async () => (await this.gatewayNodes()).length === 3, 15_000, 'the gateway to see three nodes').catch(
      (err: Error) => {
        throw new Error(`${err.message}; gateway said: ${this.gatewayErr}`);
      },
    );
    await this.proxy.start();
  }

  /** Starts node `id` again (same id, a new port). */
  async restart(id: string): Promise<NodeProcess> {
    const node = await this.cluster.start(id);
    this.nodes = [...this.nodes.filter((n) => n.id !== id), node];
    await this.untilAsync(async () => (await this.gatewayNodes()).includes(id), 15_000, `the gateway to see ${id} again`);
    return node;
  }

  async until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The gateway's process and, with `SWITCHBOARD_GATEWAY_WORKERS` above 1, its workers. */
  gatewayPids(): number[] {
    const pid = this.gateway.pid;
    if (pid === undefined) return [];
    try {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      return [pid, ...(children ? children.split(' ').map(Number) : [])];
    } catch {
      return [pid];
    }
  }

  /** The nodes the gateway routes to now (its /readyz), [] while it does not answer. */
  async gatewayNodes(): Promise<string[]> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.gatewayPort}/readyz`);
      return ((await res.json()) as { nodes?: string[] }).nodes ?? [];
    } catch {
      return [];
    }
  }

  async untilAsync(test: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await test())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    running.delete(this);
    const logDir = process.env.CHAOS_LOG_DIR;
    if (logDir) {
      // What the processes logged (warn and above), for reading after a failed scenario.
      mkdirSync(logDir, { recursive: true });
      const tag = `${this.options.broker}-${Date.now()}`;
      for (const node of this.nodes) writeFileSync(join(logDir, `${tag}-${node.id}.log`), node.stdout() + node.stderr());
      writeFileSync(join(logDir, `${tag}-gateway.log`), this.gatewayErr);
    }
    await this.proxy.stop();
    await this.nodeProxy?.stop();
    if (this.gateway && this.gateway.exitCode === null) {
      const exited = new Promise((r) => this.gateway.once('exit', r));
      this.gateway.kill('SIGTERM');
      await exited;
    }
    await this.cluster?.stop();
    await this.broker?.dispose();
    await this.redis?.dispose();
  }
}
