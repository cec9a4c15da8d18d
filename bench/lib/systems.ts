/**
 * The servers under test, each in its own process: Switchboard through its real CLI, the raw ws
 * peer, and Socket.IO (alone, or on the Redis adapter). Also the private redis-server the clustered
 * systems share, so the bench neither disturbs nor is disturbed by anyone else's Redis; for the
 * other brokers between Switchboard nodes, a private nats-server and a vhost of the bench's own on
 * the shared RabbitMQ server.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { HashRing } from '@switchboard/server';
import type { ClientKind } from './protocol.js';
import { sleep, withTimeout } from './util.js';

/** A system as the report names it. */
export interface SystemConfig {
  /** Key in the report (`switchboard`, `socketio-redis-2`, …). */
  id: string;
  label: string;
  family: 'switchboard' | 'raw' | 'socketio';
  kind: ClientKind;
  nodes: number;
  /** Nodes share a Redis (engine `redis` / the Redis adapter). */
  redis: boolean;
  /** Switchboard cluster: the broker between nodes (history, presence and registry stay on Redis). */
  broker?: Broker;
  /** Switchboard cluster routing. */
  routing?: Routing;
  /**
   * Every client connects through one `switchboard gateway` process (policy `hash`) instead of to
   * a node directly; the gateway's CPU counts as the system's.
   */
  gateway?: boolean;
  /**
   * Through a gateway: its worker processes (`SWITCHBOARD_GATEWAY_WORKERS`, default 1), all of
   * whose CPU counts. Each holds two descriptors per client, so 100,000 clients need a dozen.
   */
  gatewayWorkers?: number;
  /** Switchboard: `SWITCHBOARD_INBOX=on` (every `user:` channel an inbox). */
  inbox?: boolean;
  /** Switchboard cluster: history (and inbox) in PostgreSQL instead of Redis (a database of the bench's own). */
  history?: 'postgres';
}

/** Switchboard's cluster routing strategies. */
export type Routing = 'interest' | 'broadcast' | 'hash';

/** The brokers between Switchboard nodes the bench can run (`SWITCHBOARD_BROKER`). */
export type Broker = 'redis' | 'rabbitmq' | 'nats';

const BROKER_LABEL: Record<Broker, string> = { redis: 'Redis', rabbitmq: 'RabbitMQ', nats: 'NATS' };

export const SWITCHBOARD: SystemConfig = {
  id: 'switchboard',
  label: 'Switchboard',
  family: 'switchboard',
  kind: 'switchboard',
  nodes: 1,
  redis: false,
};
export const RAW_WS: SystemConfig = { id: 'raw-ws', label: 'raw ws', family: 'raw', kind: 'raw', nodes: 1, redis: false };
export const SOCKETIO: SystemConfig = { id: 'socketio', label: 'Socket.IO', family: 'socketio', kind: 'socketio', nodes: 1, redis: false };

/**
 * Switchboard on `nodes` nodes sharing a Redis (engine `redis`: history, presence, registry), with
 * `broker` between them (default Redis pub/sub: `switchboard-redis-2`; `switchboard-nats-2`,
 * `switchboard-rabbitmq-2`); with `gateway`, every client connects through a gateway.
 */
export function switchboardCluster(
  nodes: number,
  routing: Routing = 'interest',
  opts: { gateway?: boolean; gatewayWorkers?: number; broker?: Broker; inbox?: boolean; history?: 'postgres' } = {},
): SystemConfig {
  const suffix = routing === 'interest' ? '' : ` ${routing}`;
  const broker = opts.broker ?? 'redis';
  const store = `${opts.history === 'postgres' ? ', history in PostgreSQL' : ''}${opts.inbox ? ', inbox on' : ''}`;
  return {
    id: `switchboard-${broker}-${nodes}${routing === 'interest' ? '' : `-${routing}`}${opts.gateway ? '-gateway' : ''}${opts.history === 'postgres' ? '-pg' : ''}${opts.inbox ? '-inbox' : ''}`,
    label: `Switchboard + ${BROKER_LABEL[broker]} ×${nodes}${suffix}${opts.gateway ? ` via gateway${opts.gatewayWorkers ? ` (${opts.gatewayWorkers} workers)` : ''}` : ''}${store}`,
    family: 'switchboard',
    kind: 'switchboard',
    nodes,
    redis: true,
    broker,
    routing,
    ...(opts.gateway ? { gateway: true } : {}),
    ...(opts.gateway && opts.gatewayWorkers ? { gatewayWorkers: opts.gatewayWorkers } : {}),
    ...(opts.inbox ? { inbox: true } : {}),
    ...(opts.history ? { history: opts.history } : {}),
  };
}

/** Socket.IO on `nodes` nodes with @socket.io/redis-adapter. */
export function socketioCluster(nodes: number): SystemConfig {
  return { id: `socketio-redis-${nodes}`, label: `Socket.IO + Redis ×${nodes}`, family: 'socketio', kind: 'socketio', nodes, redis: true };
}

/** The child processes of `pid` (a gateway's workers), from /proc. */
function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** The node ids of a Switchboard system's nodes, in the order of its `urls`. */
function nodeIds(config: SystemConfig): string[] {
  return Array.from({ length: config.nodes }, (_, i) => `bench${i + 1}`);
}

/** A started system. */
export interface RunningSystem {
  config: SystemConfig;
  /**
   * One base URL per node (`ws://…` for ws clients, `http://…` for socket.io). Through a gateway,
   * every entry is the gateway's URL: the gateway, not the client, picks the node.
   */
  urls: string[];
  /** Switchboard: each node's own base URL (`http://…`), for its `/metrics`, gateway or not. */
  nodeUrls?: string[];
  /** Server process ids: the nodes' first, in order, then the gateway's and its workers' (Redis excluded). */
  pids: number[];
  /**
   * Through a gateway: the index of the node the gateway places `user` on (its `hash` policy: the
   * owner of the user on the cluster's ring), so a scenario can choose users that land where it
   * needs them. Undefined when clients pick their node by URL.
   */
  nodeOf?: (user: string) => number;
  stop(): Promise<void>;
}

/** The HS256 secret every Switchboard node and every token of the bench share. */
export const BENCH_SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

/** The HTTP API key of every Switchboard node of the bench. */
export const BENCH_API_KEY = 'bench-api-key-0123456789';

/** Owns every process the bench starts, and ends them all when the bench ends, however it ends. */
export class ServerEnv {
  private readonly children = new Set<ChildProcess>();
  private redis: { url: string; pid: number; child: ChildProcess } | undefined;
  private nats: { url: string; pid: number; child: ChildProcess } | undefined;
  /** The bench's vhost on the shared RabbitMQ, and the pid of that server's Erlang VM. */
  private rabbit: { vhost: string; url: string; pid: number | undefined } | undefined;
  private rabbitUsable: boolean | undefined;
  /** The bench's own database on the shared PostgreSQL (created on first use, dropped by `stopAll`). */
  private database: Promise<string> | undefined;
  private postgresUsable: boolean | undefined;
  private seq = 0;

  constructor(
    private readonly repo: string,
    private readonly opts: {
      cpuProfDir?: string;
      /** `--loop-trace`: every server process records its event-loop stalls and GC pauses here. */
      loopTraceDir?: string;
      /** `--node-flags`: Node and V8 flags of every Switchboard node. */
      nodeFlags?: string[];
      redisServer: string;
      natsServer?: string;
      switchboardEnv?: Record<string, string>;
    },
  ) {}

  /** Where the server processes record their stalls (`--loop-trace`); undefined when not traced. */
  get loopTraceDir(): string | undefined {
    return this.opts.loopTraceDir;
  }

  /** Node flags and environment that make a server process record its stalls ({@link loopTraceDir}). */
  private loopTrace(): { execArgv: string[]; env: NodeJS.ProcessEnv } {
    const dir = this.opts.loopTraceDir;
    if (!dir) return { execArgv: [], env: {} };
    mkdirSync(dir, { recursive: true });
    const preload = pathToFileURL(join(this.repo, 'bench/lib/loop-trace.mjs')).href;
    return { execArgv: ['--import', preload], env: { BENCH_LOOP_TRACE_DIR: dir } };
  }

  /** The private Redis (started on first use); undefined when redis-server is not installed. */
  get redisPid(): number | undefined {
    return this.redis?.pid;
  }

  get redisUrl(): string | undefined {
    return this.redis?.url;
  }

  /** True when a redis-server binary can be run. */
  canRunRedis(): boolean {
    return this.opts.redisServer.includes('/') ? existsSync(this.opts.redisServer) : whichSync(this.opts.redisServer);
  }

  /** The nats-server binary: `--nats-server`, else the first installed of the usual places. */
  private natsServerBin(): string | undefined {
    const bin = this.opts.natsServer;
    if (bin) return bin.includes('/') ? (existsSync(bin) ? bin : undefined) : whichSync(bin) ? bin : undefined;
    return NATS_SERVER_CANDIDATES.find((p) => existsSync(p)) ?? (whichSync('nats-server') ? 'nats-server' : undefined);
  }

  /** True when `rabbitmqctl` answers (the shared RabbitMQ runs and this user may manage it); asked once. */
  canRunRabbit(): boolean {
    if (this.rabbitUsable === undefined) {
      try {
        execFileSync('rabbitmqctl', ['-q', 'list_vhosts'], { stdio: 'ignore', timeout: 30_000 });
        this.rabbitUsable = true;
      } catch {
        this.rabbitUsable = false;
      }
    }
    return this.rabbitUsable;
  }

  /** Whether what `config` needs (Redis; nats-server or RabbitMQ for those brokers) is here; else why not. */
  unavailable(config: SystemConfig): string | undefined {
    if (config.redis && !this.canRunRedis()) return 'redis-server is not installed (apt-get install redis-server)';
    if (config.broker === 'nats' && !this.natsServerBin()) return 'nats-server is not installed (apt-get install nats-server)';
    if (config.broker === 'rabbitmq' && !this.canRunRabbit())
      return 'RabbitMQ does not answer rabbitmqctl (scripts/ensure-rabbitmq.sh; Debian: apt-get install rabbitmq-server)';
    if (config.history === 'postgres' && !this.canRunPostgres())
      return `PostgreSQL does not answer at ${PG_ADMIN_URL} (scripts/ensure-postgres.sh)`;
    return undefined;
  }

  /** True when the shared PostgreSQL answers `psql` as user postgres; asked once. */
  canRunPostgres(): boolean {
    if (this.postgresUsable === undefined) {
      try {
        execFileSync('psql', [PG_ADMIN_URL, '-Atc', 'SELECT 1'], { stdio: 'ignore', timeout: 10_000 });
        this.postgresUsable = true;
      } catch {
        this.postgresUsable = false;
      }
    }
    return this.postgresUsable;
  }

  /** The URL of the bench's own database, created (empty) on first use; the nodes apply the schema. */
  private postgresDatabase(): Promise<string> {
    this.database ??= (async () => {
      const name = `switchboard_bench_${process.pid}`;
      execFileSync('psql', [PG_ADMIN_URL, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'ignore', timeout: 30_000 });
      execFileSync('psql', [PG_ADMIN_URL, '-qc', `CREATE DATABASE ${name}`], { stdio: 'ignore', timeout: 30_000 });
      return PG_ADMIN_URL.replace(/\/postgres$/, `/${name}`);
    })();
    return this.database;
  }

  /** Empties the bench's database between systems (the schema stays). */
  private resetPostgres(url: string): void {
    const tables = 'switchboard_channels, switchboard_messages, switchboard_idempotency, switchboard_acks, switchboard_webhooks';
    execFileSync(
      'psql',
      [url, '-qc', `DO $$ BEGIN IF to_regclass('switchboard_messages') IS NOT NULL THEN TRUNCATE ${tables}; END IF; END $$`],
      {
        stdio: 'ignore',
        timeout: 30_000,
      },
    );
  }

  /**
   * Processes outside the system's own whose CPU is the broker's: the private nats-server, or the
   * Erlang VM of the shared RabbitMQ (the whole server). Empty for Redis, counted as Redis.
   */
  brokerPids(config: SystemConfig): number[] {
    const pids: number[] = [];
    if (config.broker === 'nats' && this.nats) pids.push(this.nats.pid);
    if (config.broker === 'rabbitmq' && this.rabbit?.pid !== undefined) pids.push(this.rabbit.pid);
    // The shared PostgreSQL runs nothing else during the bench: its server and every backend alive now.
    if (config.history === 'postgres') pids.push(...pgrepExact('postgres'));
    return pids;
  }

  /** Starts the private nats-server (core NATS, no JetStream) on a free loopback port. */
  async startNats(): Promise<string> {
    if (this.nats) return this.nats.url;
    const bin = this.natsServerBin();
    if (!bin) throw new Error('nats-server is not installed (apt-get install nats-server)');
    const port = await freePort();
    const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    const tail = collectTail(child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await natsAnswers(port)) break;
      if (Date.now() > deadline || child.exitCode !== null) {
        await this.kill(child);
        throw new Error(`nats-server did not start on port ${port}\n${tail()}`);
      }
      await sleep(100);
    }
    this.nats = { url: `nats://127.0.0.1:${port}`, pid: child.pid!, child };
    return this.nats.url;
  }

  /**
   * The bench's own vhost on the shared RabbitMQ (`sbbench-<random>`, guest may use it), created on
   * first use and deleted when the bench ends; its AMQP URL. Also finds the server's Erlang VM, whose
   * CPU the RabbitMQ rows count.
   */
  async rabbitVhost(): Promise<string> {
    if (this.rabbit?.pid !== undefined) return this.rabbit.url;
    await this.deleteRabbitVhost(); // a first attempt that did not find the VM
    const vhost = `sbbench-${randomBytes(4).toString('hex')}`;
    await rabbitmqctl('add_vhost', vhost);
    // Recorded before anything else can fail, so that the vhost is deleted however the bench ends.
    this.rabbit = { vhost, url: `amqp://guest:guest@127.0.0.1:5672/${vhost}`, pid: undefined };
    await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
    this.rabbit.pid = await rabbitPid();
    // Without it the RabbitMQ rows would leave the broker out of their CPU without saying so.
    if (this.rabbit.pid === undefined) throw new Error("cannot find the RabbitMQ server's Erlang VM (rabbitmqctl eval 'os:getpid().')");
    return this.rabbit.url;
  }

  /**
   * Deletes the queues left in the bench's vhost by the previous run: each node's durable queue
   * `sb.node.<id>` outlives it by a minute (`x-expires`), and the next run's nodes have the same ids,
   * so they would start with the old run's bindings and messages.
   */
  private async resetRabbitVhost(): Promise<void> {
    if (!this.rabbit) return;
    const out = await rabbitmqctl('list_queues', '-p', this.rabbit.vhost, '--no-table-headers', 'name');
    for (const name of out
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean))
      await rabbitmqctl('delete_queue', '-p', this.rabbit.vhost, name);
  }

  /** Deletes the bench's vhost (and so everything in it). */
  private async deleteRabbitVhost(): Promise<void> {
    const rabbit = this.rabbit;
    if (!rabbit) return;
    this.rabbit = undefined;
    await rabbitmqctl('delete_vhost', rabbit.vhost).catch((err: Error) =>
      process.stderr.write(`bench: could not delete RabbitMQ vhost ${rabbit.vhost}: ${err.message.split('\n')[0]}\n`),
    );
  }

  /** Starts the private redis-server on a free loopback port. */
  async startRedis(): Promise<string> {
    if (this.redis) return this.redis.url;
    const port = await freePort();
    const child = spawn(
      this.opts.redisServer,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.track(child);
    const tail = collectTail(child);
    const url = `redis://127.0.0.1:${port}`;
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined); // refused until redis-server is up: the loop below retries
    try {
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await client.connect();
          await client.ping();
          break;
        } catch (err) {
          if (Date.now() > deadline || child.exitCode !== null)
            throw new Error(`redis-server did not start on port ${port}: ${(err as Error).message}\n${tail()}`, { cause: err });
          client.disconnect();
          await sleep(100);
        }
      }
    } finally {
      client.disconnect();
    }
    this.redis = { url, pid: child.pid!, child };
    return url;
  }

  /** Empties the private Redis between systems, so one run's keys cannot slow the next. */
  async flushRedis(): Promise<void> {
    if (!this.redis) return;
    const client = new Redis(this.redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      await withTimeout(client.flushall(), 10_000, 'redis FLUSHALL');
    } finally {
      client.disconnect();
    }
  }

  /** Starts every node of `config`; resolves once each accepts connections. */
  async start(config: SystemConfig): Promise<RunningSystem> {
    let redisUrl: string | undefined;
    if (config.redis) {
      redisUrl = await this.startRedis();
      await this.flushRedis();
    }
    const brokerEnv: Record<string, string> = {};
    if (config.history === 'postgres') {
      brokerEnv.SWITCHBOARD_HISTORY = 'postgres';
      brokerEnv.DATABASE_URL = await this.postgresDatabase();
      this.resetPostgres(brokerEnv.DATABASE_URL);
    }
    if (config.inbox) brokerEnv.SWITCHBOARD_INBOX = 'on';
    if (config.broker === 'nats') brokerEnv.NATS_URL = await this.startNats();
    if (config.broker === 'rabbitmq') {
      brokerEnv.AMQP_URL = await this.rabbitVhost();
      await this.resetRabbitVhost();
    }
    const run = `${process.pid}-${++this.seq}`;
    const started: { child: ChildProcess; port: number }[] = [];
    try {
      for (let i = 0; i < config.nodes; i++) {
        started.push(await this.startNode(config, i, run, redisUrl, brokerEnv));
      }
    } catch (err) {
      await Promise.all(started.map((s) => this.kill(s.child)));
      throw err;
    }
    const scheme = config.kind === 'socketio' ? 'http' : 'ws';
    const stopNodes = async () => {
      await Promise.all(started.map((s) => this.kill(s.child)));
    };
    if (config.gateway) {
      let gateway: { child: ChildProcess; port: number } | undefined;
      try {
        gateway = await this.startGateway(config, run, redisUrl!);
      } catch (err) {
        await stopNodes();
        throw err;
      }
      const gw = gateway;
      const ring = HashRing.from(nodeIds(config));
      return {
        config,
        urls: started.map(() => `ws://127.0.0.1:${gw.port}`),
        nodeUrls: started.map((s) => `http://127.0.0.1:${s.port}`),
        pids: [...started.map((s) => s.child.pid!), gw.child.pid!, ...((config.gatewayWorkers ?? 1) > 1 ? childPids(gw.child.pid!) : [])],
        nodeOf: (user) => nodeIds(config).indexOf(ring.nodeFor(user)!),
        // The gateway first, so no client is placed on a node that is already going.
        stop: async () => {
          await this.kill(gw.child);
          await stopNodes();
        },
      };
    }
    return {
      config,
      urls: started.map((s) => `${scheme}://127.0.0.1:${s.port}`),
      ...(config.family === 'switchboard' ? { nodeUrls: started.map((s) => `http://127.0.0.1:${s.port}`) } : {}),
      pids: started.map((s) => s.child.pid!),
      stop: stopNodes,
    };
  }

  /**
   * Starts `switchboard gateway` in front of the nodes of `run` (the same secret, API key, Redis
   * and prefix) and waits until its `/readyz` lists every node: until then it would place clients
   * on fewer nodes than the direct system has.
   */
  private async startGateway(config: SystemConfig, run: string, redisUrl: string): Promise<{ child: ChildProcess; port: number }> {
    const env = this.switchboardEnv();
    Object.assign(env, {
      SWITCHBOARD_NODE_ID: 'bench-gw',
      SWITCHBOARD_ENGINE: 'redis',
      REDIS_URL: redisUrl,
      SWITCHBOARD_REDIS_PREFIX: `bench-${run}:`,
      SWITCHBOARD_GATEWAY_POLICY: 'hash',
      ...(config.gatewayWorkers ? { SWITCHBOARD_GATEWAY_WORKERS: String(config.gatewayWorkers) } : {}),
    });
    const bin = join(this.repo, 'packages/server/bin/switchboard.js');
    const gw = await this.spawnServer([bin, 'gateway', '--port', '0', '--host', '127.0.0.1'], env, (line) => {
      if (!line.includes('gateway listening')) return undefined;
      const m = /"url":"http:\/\/[^"]*:(\d+)"/.exec(line);
      return m ? Number(m[1]) : undefined;
    });
    const want = nodeIds(config);
    let seen: string[] = [];
    const deadline = Date.now() + 20_000;
    try {
      for (;;) {
        try {
          const res = await fetch(`http://127.0.0.1:${gw.port}/readyz`, { signal: AbortSignal.timeout(2000) });
          seen = ((await res.json()) as { nodes?: string[] }).nodes ?? [];
          if (res.ok && want.every((id) => seen.includes(id))) break;
        } catch {
          // not answering yet: try again below
        }
        if (Date.now() > deadline)
          throw new Error(`the gateway's /readyz listed [${seen.join(', ')}] after 20 s, not every node of [${want.join(', ')}]`);
        await sleep(100);
      }
      // Its workers, once all of them are up (and the short-lived helpers that duplicate descriptors gone).
      const workers = config.gatewayWorkers ?? 1;
      while (workers > 1 && childPids(gw.child.pid!).length !== workers) {
        if (Date.now() > deadline)
          throw new Error(`the gateway had ${childPids(gw.child.pid!).length} of its ${workers} workers after 20 s`);
        await sleep(100);
      }
    } catch (err) {
      await this.kill(gw.child);
      throw err;
    }
    return gw;
  }

  /** The environment every Switchboard process of the bench starts from. */
  private switchboardEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    // The caller's own SWITCHBOARD_* settings must not leak into the system under test.
    for (const [k, v] of Object.entries(process.env)) if (!leakyEnv(k)) env[k] = v;
    Object.assign(env, {
      SWITCHBOARD_JWT_SECRET: BENCH_SECRET,
      SWITCHBOARD_API_KEY: BENCH_API_KEY,
      SWITCHBOARD_LOG_LEVEL: 'info',
      // Tokens the gateway checks and the nodes check again; the handshake bound is the nodes' too.
      SWITCHBOARD_HANDSHAKE_TIMEOUT_MS: '60000',
    });
    // --sb-env: an experiment's own settings go to the gateway as well, since it reads the same table.
    Object.assign(env, this.opts.switchboardEnv);
    return env;
  }

  private async startNode(
    config: SystemConfig,
    index: number,
    run: string,
    redisUrl: string | undefined,
    brokerEnv: Record<string, string> = {},
  ): Promise<{ child: ChildProcess; port: number }> {
    if (config.family === 'switchboard') {
      const env: NodeJS.ProcessEnv = {};
      // The caller's own SWITCHBOARD_* settings must not leak into the system under test.
      for (const [k, v] of Object.entries(process.env)) if (!leakyEnv(k)) env[k] = v;
      Object.assign(env, {
        SWITCHBOARD_JWT_SECRET: BENCH_SECRET,
        SWITCHBOARD_API_KEY: BENCH_API_KEY,
        SWITCHBOARD_NODE_ID: `bench${index + 1}`,
        SWITCHBOARD_LOG_LEVEL: 'info',
        // The bench's clients are well behaved and many share a process: lift the per-session and
        // per-node guards that exist to stop abusive ones, so the limits measured are the server's.
        SWITCHBOARD_RATE_LIMIT_PER_SECOND: '1000000',
        SWITCHBOARD_RATE_LIMIT_BURST: '1000000',
        // The routing scenario looks up /v1/route as fast as it can from one address.
        SWITCHBOARD_HTTP_RATE_LIMIT_PER_SECOND: '0',
        SWITCHBOARD_MAX_CONNECTIONS_PER_USER: '100000',
        SWITCHBOARD_MAX_CONNECTIONS: '1000000',
        SWITCHBOARD_HANDSHAKE_TIMEOUT_MS: '60000',
      });
      // --sb-env: an experiment's own settings (e.g. to measure what one option buys) go last.
      Object.assign(env, this.opts.switchboardEnv);
      if (config.redis) {
        Object.assign(env, {
          SWITCHBOARD_ENGINE: 'redis',
          REDIS_URL: redisUrl,
          SWITCHBOARD_REDIS_PREFIX: `bench-${run}:`,
          SWITCHBOARD_ROUTING: config.routing ?? 'interest',
          SWITCHBOARD_BROKER: config.broker ?? 'redis',
          ...brokerEnv,
        });
      }
      const trace = this.loopTrace();
      Object.assign(env, trace.env);
      const execArgv: string[] = [...trace.execArgv, ...(this.opts.nodeFlags ?? [])];
      if (this.opts.cpuProfDir) {
        mkdirSync(this.opts.cpuProfDir, { recursive: true });
        execArgv.push('--cpu-prof', `--cpu-prof-dir=${this.opts.cpuProfDir}`);
      }
      const bin = join(this.repo, 'packages/server/bin/switchboard.js');
      return this.spawnServer([...execArgv, bin, 'node', '--port', '0', '--host', '127.0.0.1'], env, (line) => {
        if (!line.includes('node listening')) return undefined;
        const m = /"url":"http:\/\/[^"]*:(\d+)"/.exec(line);
        return m ? Number(m[1]) : undefined;
      });
    }
    const peer = join(this.repo, 'bench/peers', config.family === 'raw' ? 'raw-ws.ts' : 'socketio.ts');
    const trace = this.loopTrace();
    const args = [...trace.execArgv, '--import', 'tsx', peer, '--port', '0', '--host', '127.0.0.1'];
    if (config.redis) args.push('--redis', redisUrl!, '--key', `bench-${run}`);
    return this.spawnServer(args, { ...process.env, ...trace.env }, (line) => {
      const m = /^listening (\d+)$/.exec(line.trim());
      return m ? Number(m[1]) : undefined;
    });
  }

  private async spawnServer(
    args: string[],
    env: NodeJS.ProcessEnv,
    portOf: (line: string) => number | undefined,
  ): Promise<{ child: ChildProcess; port: number }> {
    const child = spawn(process.execPath, args, { cwd: this.repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.track(child);
    const tail = collectTail(child);
    const port = await withTimeout(
      new Promise<number>((resolve, reject) => {
        let buffered = '';
        child.stdout!.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            const port = portOf(line);
            if (port !== undefined) resolve(port);
          }
          if (buffered.length > 65_536) buffered = '';
        });
        child.once('exit', (code, signal) =>
          reject(new Error(`server exited (${signal ?? code}) before listening: ${args.join(' ')}\n${tail()}`)),
        );
      }),
      30_000,
      `starting ${args.join(' ')}`,
    ).catch(async (err: Error) => {
      await this.kill(child);
      throw new Error(`${err.message}\n${tail()}`);
    });
    return { child, port };
  }

  private track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** SIGTERM, then SIGKILL after a bound. */
  private async kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    try {
      await withTimeout(exited, 15_000, 'server exit');
    } catch {
      child.kill('SIGKILL');
      await withTimeout(exited, 5_000, 'server kill').catch(() => undefined);
    }
  }

  /** Stops everything this env started, the brokers and Redis last, and deletes the RabbitMQ vhost. */
  async stopAll(): Promise<void> {
    const shared = [this.redis?.child, this.nats?.child];
    await Promise.all([...this.children].filter((c) => !shared.includes(c)).map((c) => this.kill(c)));
    for (const c of shared) if (c) await this.kill(c);
    this.redis = undefined;
    this.nats = undefined;
    await this.deleteRabbitVhost();
    await this.dropDatabase();
  }

  private async dropDatabase(): Promise<void> {
    const url = await this.database?.catch(() => undefined);
    this.database = undefined;
    if (!url) return;
    const name = url.slice(url.lastIndexOf('/') + 1);
    try {
      execFileSync('psql', [PG_ADMIN_URL, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      process.stderr.write(`bench: could not drop database ${name} (psql ${PG_ADMIN_URL} -c 'DROP DATABASE ${name}')\n`);
    }
  }

  /** Synchronous last resort (process exit): SIGKILL whatever is still running, delete the RabbitMQ vhost. */
  killAllNow(): void {
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    const rabbit = this.rabbit;
    if (rabbit) {
      this.rabbit = undefined;
      try {
        execFileSync('rabbitmqctl', ['-q', 'delete_vhost', rabbit.vhost], { stdio: 'ignore', timeout: 30_000 });
      } catch {
        process.stderr.write(`bench: could not delete RabbitMQ vhost ${rabbit.vhost} (rabbitmqctl delete_vhost ${rabbit.vhost})\n`);
      }
    }
  }
}

/** The caller's settings that must not leak into the system under test. */
function leakyEnv(key: string): boolean {
  return key.startsWith('SWITCHBOARD_') || ['REDIS_URL', 'AMQP_URL', 'NATS_URL', 'DATABASE_URL', 'PORT', 'HOST'].includes(key);
}

/** The shared PostgreSQL's maintenance database (trust auth on loopback, as on the project's machines). */
const PG_ADMIN_URL = process.env.SWITCHBOARD_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** Pids of the processes named exactly `name`. */
function pgrepExact(name: string): number[] {
  try {
    return execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Where nats-server may be installed. */
const NATS_SERVER_CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

const execFileAsync = promisify(execFile);

/** `rabbitmqctl -q <args>`: its output. */
async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('rabbitmqctl', ['-q', ...args], { timeout: 60_000, encoding: 'utf8' });
  return stdout;
}

/** The pid of the RabbitMQ server's Erlang VM (its CPU is the broker's); undefined when not found. */
async function rabbitPid(): Promise<number | undefined> {
  try {
    const m = /(\d+)/.exec(await rabbitmqctl('eval', 'os:getpid().'));
    if (m) return Number(m[1]);
  } catch {
    // try pgrep below
  }
  try {
    const { stdout } = await execFileAsync('pgrep', ['-o', '-f', 'beam.smp.*rabbit'], { encoding: 'utf8' });
    const pid = Number(stdout.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when a NATS server greets a connection on `port` with its INFO line. */
function natsAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk: Buffer) => done(chunk.toString('utf8').startsWith('INFO')));
  });
}

/** Keeps the last lines a process printed, to explain a failure; drains its pipes meanwhile. */
function collectTail(child: ChildProcess): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      lines.push(line.slice(0, 400));
      if (lines.length > 20) lines.shift();
    }
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => lines.join('\n');
}

/** A TCP port that was free a moment ago (redis-server cannot be told to pick one). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function whichSync(name: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':');
  return dirs.some((d) => d && existsSync(join(d, name)));
}
