/**
 * `switchboard gateway --gateway-workers 2`, spawned as a user runs it, in front of two real node
 * processes on Redis: both workers on the one port, `/metrics` summed over them, a worker killed
 * with -9 (only its clients drop; it is replaced), SIGTERM, and a worker that cannot start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { API_KEY, SECRET, TestClient, token } from './helpers.js';
import { Cluster, REDIS_URL, freePort } from './cluster/harness.js';
import { eventually } from './support/eventually.js';
import { redisSkip } from './redis-helpers.js';

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));
const WAIT = { timeoutMs: 10_000, intervalMs: 50 };
const CLIENTS = 40;

interface GatewayProcess {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  /** Its logs (pino writes to stdout). */
  stdout: () => string;
  exited: Promise<number | null>;
}

function spawnGateway(prefix: string, port: number, workers: number): GatewayProcess {
  let stderr = '';
  let stdout = '';
  const child = spawn(
    process.execPath,
    [BIN, 'gateway', '--port', String(port), '--gateway-workers', String(workers), '--node-id', 'gw-w'],
    {
      env: {
        ...process.env,
        REDIS_URL,
        SWITCHBOARD_REDIS_PREFIX: prefix,
        SWITCHBOARD_JWT_SECRET: SECRET,
        SWITCHBOARD_API_KEY: API_KEY,
        SWITCHBOARD_GATEWAY_PROBE_INTERVAL_MS: '200',
        SWITCHBOARD_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, port, stderr: () => stderr, stdout: () => stdout, exited };
}

/** The worker processes of a primary. */
function workersOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(' ').map(Number) : [];
}

/** Which process holds the gateway's side of each TCP connection to `port`, by the peer's port. */
function holders(port: number): Map<number, number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  const map = new Map<number, number>();
  for (const line of out.split('\n')) {
    const peer = /127\.0\.0\.1:\d+\s+127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (peer && pid) map.set(Number(peer), Number(pid));
  }
  return map;
}

/** The sum of a metric's samples in a Prometheus text. */
function total(text: string, name: string, label = ''): number {
  return text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

const metrics = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

describe('gateway workers', { skip: redisSkip }, () => {
  const cluster = new Cluster({ SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
  let gw: GatewayProcess;
  const open: TestClient[] = [];

  before(async () => {
    await Promise.all(['w1', 'w2'].map((id) => cluster.start(id)));
    gw = spawnGateway(cluster.prefix, await freePort(), 2);
    await eventually(() => gw.stderr().includes('2 workers') || gw.child.exitCode !== null, { ...WAIT, message: 'the gateway banner' });
    assert.equal(gw.child.exitCode, null, gw.stderr());
    await eventually(async () => (await fetch(`http://127.0.0.1:${gw.port}/readyz`)).status === 200, {
      ...WAIT,
      message: 'the gateway to see the nodes',
    });
  });

  after(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
    await cluster.stop();
  });

  it('runs two worker processes on one port; every client is proxied and /metrics sums the workers', async () => {
    const workers = workersOf(gw.child.pid!);
    assert.equal(workers.length, 2);
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const c = new TestClient(`ws://127.0.0.1:${gw.port}/ws?token=${await token(`wu${i}`)}`);
        open.push(c);
        await c.next((f) => f.type === 'welcome');
        return c;
      }),
    );
    // Each connection's gateway side is held by one of the two workers, never by the primary.
    const byPeer = holders(gw.port);
    const owners = clients.map((c) => byPeer.get((c.ws as unknown as { _socket: { localPort: number } })._socket.localPort));
    assert.ok(
      owners.every((pid) => pid !== undefined && workers.includes(pid)),
      `owners ${owners.join(',')} of workers ${workers.join(',')}`,
    );
    // A message across the cluster through whichever workers hold the two ends.
    await clients[0]!.request({ type: 'send', to: 'wu1', topic: 'hello', data: { n: 1 } });
    assert.deepEqual((await clients[1]!.next((f) => f.type === 'message' && f.topic === 'hello')).data, { n: 1 });
    const text = await metrics(gw.port);
    assert.equal(total(text, 'switchboard_gateway_connections'), CLIENTS, 'open connections summed over the workers');
    assert.equal(total(text, 'switchboard_gateway_upgrades_total', 'result="proxied"'), CLIENTS);
    assert.equal(total(text, 'switchboard_gateway_workers'), 2);
    assert.equal(total(text, 'switchboard_gateway_node_up', 'target="w1"'), 1, 'up on every worker (min over them)');
  });

  it('a worker killed with -9 drops only its own clients and is replaced', async () => {
    const workers = workersOf(gw.child.pid!);
    const byPeer = holders(gw.port);
    const ownerOf = (c: TestClient) => byPeer.get((c.ws as unknown as { _socket: { localPort: number } })._socket.localPort);
    // The worker holding the most clients (with two, the kernel may give one of them all).
    const counts = workers.map((pid) => open.filter((c) => ownerOf(c) === pid).length);
    const victim = workers[counts[0]! >= counts[1]! ? 0 : 1]!;
    const doomed = open.filter((c) => ownerOf(c) === victim);
    const kept = open.filter((c) => ownerOf(c) !== victim);
    assert.equal(doomed.length + kept.length, CLIENTS);
    process.kill(victim, 'SIGKILL');
    await Promise.all(doomed.map((c) => c.closed));
    for (const c of kept) assert.equal(c.closeCode, undefined, 'a client of the other worker stays connected');
    if (kept.length >= 2) {
      // Two kept clients still talk: the first sends to the second's user.
      const to = kept[1]!.frames.find((f) => f.type === 'welcome')!.user as string;
      assert.equal((await kept[0]!.request({ type: 'send', to, topic: 'still', data: {} })).ok, true);
      await kept[1]!.next((f) => f.type === 'message' && f.topic === 'still');
    }
    await eventually(async () => workersOf(gw.child.pid!).length === 2 && !workersOf(gw.child.pid!).includes(victim), {
      ...WAIT,
      message: 'a new worker in place of the killed one',
    });
    await eventually(async () => total(await metrics(gw.port), 'switchboard_gateway_worker_restarts_total') === 1, {
      ...WAIT,
      message: 'the restart counted',
    });
    assert.match(gw.stdout(), /"node":"gw-w".*gateway worker exited; starting another/);
    // The gateway takes new connections again on both workers' port.
    const again = new TestClient(`ws://127.0.0.1:${gw.port}/ws?token=${await token('wu-again')}`);
    open.push(again);
    await again.next((f) => f.type === 'welcome');
  });

  it('stops every worker on SIGTERM and exits 0', async () => {
    const workers = workersOf(gw.child.pid!);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0, gw.stderr());
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`);
  });

  it('exits with the error of a worker that cannot start (the port is taken)', async () => {
    const taken = createServer();
    const port = await new Promise<number>((resolve) =>
      taken.listen(0, '127.0.0.1', () => resolve((taken.address() as { port: number }).port)),
    );
    try {
      const failing = spawnGateway(cluster.prefix, port, 2);
      assert.equal(await failing.exited, 2);
      assert.match(failing.stderr(), /port already in use/);
      assert.doesNotMatch(failing.stderr(), /at EventEmitter/, 'no stack trace');
    } finally {
      taken.close();
    }
  });
});
