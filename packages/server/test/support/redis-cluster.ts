/**
 * A private Redis Cluster for tests: three masters and one replica each, on free ports of
 * 127.0.0.1, in a temporary directory, with a short node timeout so that a failover takes about
 * two seconds. `stop()` kills every server and removes the directory.
 *
 * ```ts
 * const cluster = await RedisClusterServer.start();
 * after(() => cluster.stop());
 * // a node: SWITCHBOARD_REDIS_CLUSTER=on REDIS_URL=cluster.url
 * await cluster.failover('sb:{ch:room}'); // kill -9 of the master of that key's slot
 * ```
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { freeConsecutivePorts } from './ports.js';
import { waitForPort } from './servers.js';

const run = promisify(execFile);

/** How long a master may be silent before its replica takes over. */
const NODE_TIMEOUT_MS = 1000;

interface ClusterProcess {
  port: number;
  child: ChildProcess;
  exited: Promise<unknown>;
}

export class RedisClusterServer {
  private constructor(
    private readonly dir: string,
    private readonly servers: ClusterProcess[],
  ) {}

  /** Starts `masters` masters with `replicas` replicas each and waits until the cluster is ok. */
  static async start(masters = 3, replicas = 1): Promise<RedisClusterServer> {
    const count = masters * (1 + replicas);
    const base = await freeConsecutivePorts(2 * count);
    const dir = await mkdtemp(join(tmpdir(), 'sb-redis-cluster-'));
    const servers: ClusterProcess[] = [];
    const cluster = new RedisClusterServer(dir, servers);
    try {
      for (let i = 0; i < count; i++) {
        const port = base + i;
        // The bus port is named (Redis 7), so it is one of the free ports found, not port + 10000.
        const args = ['--port', String(port), '--cluster-port', String(base + count + i), '--bind', '127.0.0.1'];
        args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`));
        args.push('--cluster-node-timeout', String(NODE_TIMEOUT_MS), '--dir', dir, '--save', '', '--appendonly', 'no');
        const child = spawn('redis-server', args, { stdio: 'ignore' });
        servers.push({ port, child, exited: new Promise((resolve) => child.once('exit', resolve)) });
      }
      await Promise.all(servers.map((s) => waitForPort(s.port)));
      const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
      await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes']);
      await cluster.settled();
      await cluster.replicasInSync();
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** `REDIS_URL` for a node: the first server (the others are found from it). */
  get url(): string {
    return `redis://127.0.0.1:${this.servers[0]!.port}`;
  }

  /** A cluster client for the test itself; the caller quits it. */
  async client(): Promise<Cluster> {
    const client = new Cluster([{ host: '127.0.0.1', port: this.servers[0]!.port }], { lazyConnect: true });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** The port of the master that serves `key`'s slot now. */
  async masterOf(key: string): Promise<number> {
    const live = this.servers.find((s) => s.child.exitCode === null && s.child.signalCode === null)!;
    const { stdout: slot } = await run('redis-cli', ['-p', String(live.port), 'cluster', 'keyslot', key]);
    // "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges…>"
    const nodes = (await run('redis-cli', ['-p', String(live.port), 'cluster', 'nodes'])).stdout.trim().split('\n');
    const n = Number(slot.trim());
    for (const line of nodes) {
      const fields = line.split(' ');
      if (!fields[2]!.includes('master') || fields[2]!.includes('fail')) continue;
      for (const range of fields.slice(8)) {
        const [lo, hi = lo] = range.split('-').map(Number);
        if (n >= lo! && n <= hi!) return Number(fields[1]!.split(':')[1]!.split('@')[0]);
      }
    }
    throw new Error(`no live master serves slot ${n}`);
  }

  /**
   * `kill -9` of the master serving `key`'s slot; resolves once its replica has taken over and the
   * cluster is ok again. Returns the killed master's port.
   */
  async failover(key: string): Promise<number> {
    const port = await this.masterOf(key);
    const server = this.servers.find((s) => s.port === port)!;
    server.child.kill('SIGKILL');
    await server.exited;
    // The others say ok until they notice (the node timeout): wait for a new master of the slot.
    const deadline = Date.now() + 20_000;
    while ((await this.masterOf(key).catch(() => port)) === port) {
      if (Date.now() > deadline) throw new Error(`no replica took over from ${port} within 20 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.settled((p) => p !== port);
    return port;
  }

  /** Waits (up to 20 s) until every live server says `cluster_state:ok` and no master of a slot is failed. */
  private async settled(alive: (port: number) => boolean = () => true): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ports = this.servers.map((s) => s.port).filter(alive);
      const states = await Promise.all(
        ports.map((p) =>
          run('redis-cli', ['-p', String(p), 'cluster', 'info']).then(
            ({ stdout }) => stdout.includes('cluster_state:ok') && stdout.includes('cluster_slots_ok:16384'),
            () => false,
          ),
        ),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('the Redis Cluster did not settle within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits (up to 20 s) until every replica has its master's data: only then can it take over. */
  private async replicasInSync(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const infos = await Promise.all(this.servers.map((s) => run('redis-cli', ['-p', String(s.port), 'info', 'replication'])));
      const replicas = infos.map(({ stdout }) => stdout).filter((info) => info.includes('role:slave'));
      if (
        replicas.length > 0 &&
        replicas.every((info) => info.includes('master_link_status:up') && info.includes('master_sync_in_progress:0'))
      )
        return;
      if (Date.now() > deadline) throw new Error('the Redis Cluster replicas did not sync within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Kills every server and removes the directory. */
  async stop(): Promise<void> {
    for (const s of this.servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await Promise.all(this.servers.map((s) => s.exited));
    await rm(this.dir, { recursive: true, force: true });
  }
}
