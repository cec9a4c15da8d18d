/**
 * The gateway in front of three real node processes on Redis: placement by each policy (checked
 * with `welcome.node`), early 4001, health (a listed node whose /readyz fails, a killed node),
 * /v1 through the gateway, /v1/route, a message across nodes, and wss with a certificate made
 * here, through the real `switchboard gateway` process.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gateway, HashRing, resolveOptions, gatewayOptions, type PolicyName } from '../src/index.js';
import { RedisRegistry } from '../src/registry/redis-registry.js';
import { API_KEY, SECRET, TestClient, api, token, type TestNode } from './helpers.js';
import { Cluster, REDIS_URL, type NodeProcess } from './cluster/harness.js';
import { eventually } from './support/eventually.js';
import { freePort } from './support/ports.js';
import { connectRedis, redisSkip } from './redis-helpers.js';
import { logSink } from './support/log-sink.js';

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));
const LEASE_MS = 3000;
const PROBE_MS = 200;

/** How the gateway tests poll: a probe round or a node process start takes a while. */
const WAIT = { timeoutMs: 8000, intervalMs: 50 };

/** A gateway started in this process, with what tests need to talk to it. */
interface TestGateway extends TestNode {
  gateway: Gateway;
}

async function startGateway(prefix: string, policy: PolicyName, extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const { lines: logs, stream: sink } = logSink();
  const options = resolveOptions({
    port: 0,
    jwtSecret: SECRET,
    apiKey: API_KEY,
    redisUrl: REDIS_URL,
    redisPrefix: prefix,
    presenceTtlMs: LEASE_MS,
    gatewayPolicy: policy,
    gatewayProbeIntervalMs: PROBE_MS,
    nodeId: `gw-${policy}`,
    logLevel: 'info',
    ...extra,
  });
  const gateway = new Gateway(gatewayOptions(options), { logDestination: sink });
  const { url } = await gateway.start();
  return { gateway, url, wsUrl: url.replace(/^http/, 'ws') + '/ws', logs, stop: () => gateway.stop(), node: undefined as never };
}

/** Opens a session through `target` (a gateway or a node) and waits for its welcome. */
async function connect(
  target: TestNode,
  user: string,
  open: TestClient[],
  claims: Record<string, unknown> = {},
): Promise<{ client: TestClient; node: string }> {
  const client = new TestClient(`${target.wsUrl}?token=${await token(user, claims)}`);
  open.push(client);
  const welcome = await client.next((f) => f.type === 'welcome');
  return { client, node: welcome.node as string };
}

/** A counter of a node's /metrics, 0 when absent. */
async function metric(url: string, name: string, label: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('gateway', { skip: redisSkip }, () => {
  const cluster = new Cluster({ SWITCHBOARD_PRESENCE_TTL_MS: String(LEASE_MS) });
  const gateways = new Map<PolicyName, TestGateway>();
  let nodes: NodeProcess[] = [];
  const open: TestClient[] = [];
  const ring3 = HashRing.from(['n1', 'n2', 'n3']);

  /** Closes the sessions of a test so the next one starts with empty nodes. */
  const closeAll = async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  };
  const gw = (policy: PolicyName) => gateways.get(policy)!;

  before(async () => {
    nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.start(id)));
    for (const policy of ['hash', 'round-robin', 'least-conn'] as const) gateways.set(policy, await startGateway(cluster.prefix, policy));
    for (const g of gateways.values())
      await eventually(() => g.gateway.health.live().length === 3, { ...WAIT, message: 'the gateway to see three ready nodes' });
  });

  after(async () => {
    await closeAll();
    await Promise.all([...gateways.values()].map((g) => g.stop()));
    await cluster.stop();
  });

  it('answers /readyz with its live nodes, and 503 when it knows none', async () => {
    const ready = await api(gw('hash'), 'GET', '/readyz', undefined, null);
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready', gateway: 'gw-hash', nodes: ['n1', 'n2', 'n3'] });
    const lonely = await startGateway(`sbtest:empty-${Date.now()}:`, 'hash', { nodeId: 'gw-lonely' });
    try {
      assert.equal((await api(lonely, 'GET', '/readyz', undefined, null)).status, 503);
      const client = new TestClient(`${lonely.wsUrl}?token=${await token('alice')}`);
      await assert.rejects(client.opened, (err: Error & { status?: number }) => err.status === 503);
    } finally {
      await lonely.stop();
    }
  });

  it('hash: every session of a user lands on its ring owner, which /v1/route names on the gateway and the nodes', async () => {
    try {
      const users = Array.from({ length: 12 }, (_, i) => `hu${i}`);
      const owners = new Set<string>();
      for (const user of users) {
        const owner = ring3.nodeFor(user)!;
        owners.add(owner);
        for (let tab = 0; tab < 2; tab++) assert.equal((await connect(gw('hash'), user, open)).node, owner, `${user} tab ${tab}`);
        const viaGateway = await api(gw('hash'), 'GET', `/v1/route?user=${user}`);
        assert.equal(viaGateway.status, 200);
        const node = nodes.find((n) => n.id === owner)!;
        assert.deepEqual(viaGateway.body, { user, node: owner, url: node.url });
        for (const n of nodes)
          assert.deepEqual(
            (await api(n, 'GET', `/v1/route?user=${user}`)).body,
            { user, node: owner, url: node.url },
            `/v1/route on ${n.id}`,
          );
      }
      assert.equal(owners.size, 3, 'twelve users should spread over the three nodes');
    } finally {
      await closeAll();
    }
  });

  it('round-robin: consecutive connections go to each node in turn', async () => {
    try {
      const placed: string[] = [];
      for (let i = 0; i < 6; i++) placed.push((await connect(gw('round-robin'), `rr${i}`, open)).node);
      assert.deepEqual([...placed].sort(), ['n1', 'n1', 'n2', 'n2', 'n3', 'n3']);
      // In turn: no node twice in a row.
      for (let i = 1; i < placed.length; i++) assert.notEqual(placed[i], placed[i - 1]);
    } finally {
      await closeAll();
    }
  });

  it('least-conn: new connections go to the node with the fewest sessions', async () => {
    try {
      const [n1, n2] = nodes;
      for (let i = 0; i < 3; i++) await connect(n1!, `busy${i}`, open);
      for (let i = 0; i < 2; i++) await connect(n2!, `half${i}`, open);
      const health = gw('least-conn').gateway.health;
      await eventually(() => health.get('n1')?.reported === 3 && health.get('n2')?.reported === 2 && health.get('n3')?.reported === 0, {
        ...WAIT,
        message: 'the probes to report 3/2/0 sessions',
      });
      const placed: string[] = [];
      for (let i = 0; i < 3; i++) placed.push((await connect(gw('least-conn'), `lc${i}`, open)).node);
      assert.deepEqual(placed.slice(0, 2), ['n3', 'n3'], `placed ${placed}`);
      assert.notEqual(placed[2], 'n1', `placed ${placed}`);
    } finally {
      await closeAll();
    }
  });

  it('rejects a bad token with 4001 at the gateway, before any node sees it', async () => {
    const before = await Promise.all(nodes.map((n) => metric(n.url, 'switchboard_connections_total', 'result="unauthorized"')));
    const cases = [
      ['no token', ''],
      ['wrong signature', `?token=${await token('mallory', {}, { secret: 'another-secret-0123456789-abcdefghijkl' })}`],
      ['expired', `?token=${await token('mallory', {}, { expiresIn: -3600 })}`],
      ['garbage', '?token=not.a.jwt'],
    ];
    for (const [what, query] of cases) {
      const client = new TestClient(`${gw('hash').wsUrl}${query}`);
      const { code, reason } = await client.waitClose();
      assert.equal(code, 4001, what);
      assert.ok(reason.length > 0, `${what}: a reason is given`);
      assert.deepEqual(client.frames, [], `${what}: no welcome, no frame`);
    }
    assert.equal(await metric(gw('hash').url, 'switchboard_gateway_upgrades_total', 'result="unauthorized"'), cases.length);
    const afterwards = await Promise.all(nodes.map((n) => metric(n.url, 'switchboard_connections_total', 'result="unauthorized"')));
    assert.deepEqual(afterwards, before, 'no node saw the bad tokens');
  });

  it('passes frames through untouched: bare ping/pong, batch=1, replies', async () => {
    try {
      const client = new TestClient(`${gw('round-robin').wsUrl}?token=${await token('raw')}&batch=1`);
      open.push(client);
      await client.next((f) => f.type === 'welcome');
      client.send('ping');
      await client.next((f) => f.type === 'pong' && f.bare === true);
      const reply = await client.request({ type: 'subscribe', channel: 'group:nope' });
      assert.deepEqual(reply.error, { code: 'forbidden', message: reply.error.message });
    } finally {
      await closeAll();
    }
  });

  it('a message sent through the gateway reaches a user on another node, and back', async () => {
    try {
      const alice = await connect(gw('hash'), 'alice', open);
      const other = nodes.find((n) => n.id !== alice.node)!;
      const bob = await connect(other, 'bob', open);
      assert.notEqual(alice.node, bob.node);
      const sent = await alice.client.request({ type: 'send', to: 'bob', topic: 'chat', data: { text: 'hi bob' } });
      assert.equal(sent.ok, true);
      const got = await bob.client.next((f) => f.type === 'message' && f.channel === 'user:bob');
      assert.deepEqual([got.from, got.topic, got.data], ['alice', 'chat', { text: 'hi bob' }]);
      await bob.client.request({ type: 'send', to: 'alice', topic: 'chat', data: { text: 'hi alice' } });
      const back = await alice.client.next((f) => f.type === 'message' && f.channel === 'user:alice');
      assert.deepEqual([back.from, back.data], ['bob', { text: 'hi alice' }]);
    } finally {
      await closeAll();
    }
  });

  it('forwards /v1 calls to a live node and answers /v1/route itself, with the API key', async () => {
    try {
      const carol = await connect(nodes[2]!, 'carol', open);
      const published = await api(gw('hash'), 'POST', '/v1/publish', { channel: 'user:carol', topic: 'note', data: { n: 1 } });
      assert.equal(published.status, 200);
      assert.equal(published.body.channel, 'user:carol');
      const got = await carol.client.next((f) => f.type === 'message' && f.topic === 'note');
      assert.equal(got.offset, published.body.offset);
      const listed = await api(gw('hash'), 'GET', '/v1/nodes');
      assert.deepEqual(
        listed.body.nodes.map((n: { node: string }) => n.node),
        ['n1', 'n2', 'n3'],
      );
      const user = await api(gw('hash'), 'GET', '/v1/users/carol');
      assert.deepEqual([user.status, user.body.online], [200, true]);
      assert.equal((await api(gw('hash'), 'GET', '/v1/nodes', undefined, 'wrong-key-0123456789')).status, 401);
      assert.equal((await api(gw('hash'), 'GET', '/v1/route?user=carol', undefined, null)).status, 401);
      const bad = await api(gw('hash'), 'GET', '/v1/route?user=no%20spaces');
      assert.deepEqual([bad.status, bad.body.error.code], [400, 'bad_frame']);
      const tooBig = await api(gw('hash'), 'POST', '/v1/publish', { channel: 'user:carol', topic: 'big', data: 'x'.repeat(70_000) });
      assert.deepEqual([tooBig.status, tooBig.body.error.code], [413, 'too_large']);
    } finally {
      await closeAll();
    }
  });

  it('gives no new connection to a listed node whose /readyz fails', async () => {
    // A fake node: it holds a real lease in the registry, but its /readyz answers 503.
    let reached = 0;
    const fake: Server = createServer((req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'unavailable', node: 'n9' }));
    });
    fake.on('upgrade', (_req, socket) => {
      reached++;
      socket.destroy();
    });
    const port = await freePort();
    await new Promise<void>((resolve) => fake.listen(port, '127.0.0.1', resolve));
    const redis = await connectRedis();
    const sub = await connectRedis();
    const registry = new RedisRegistry({ redis, sub, prefix: cluster.prefix, nodeLeaseMs: LEASE_MS });
    try {
      await registry.register({ node: 'n9', url: `http://127.0.0.1:${port}`, connections: 0, startedAt: Date.now() });
      for (const g of gateways.values()) {
        await eventually(() => /503/.test(g.gateway.health.get('n9')?.reason ?? ''), {
          ...WAIT,
          message: 'the gateway to list n9 as failing',
        });
      }
      const ring4 = HashRing.from(['n1', 'n2', 'n3', 'n9']);
      const ownedByFake = Array.from({ length: 200 }, (_, i) => `f${i}`)
        .filter((u) => ring4.nodeFor(u) === 'n9')
        .slice(0, 4);
      assert.equal(ownedByFake.length, 4);
      for (const user of ownedByFake) {
        // hash: the owner is n9 on the cluster's ring, so the user goes to its owner among the live nodes.
        assert.equal((await connect(gw('hash'), user, open)).node, ring3.nodeFor(user));
        assert.deepEqual((await api(gw('hash'), 'GET', `/v1/route?user=${user}`)).body.node, ring3.nodeFor(user));
      }
      for (let i = 0; i < 6; i++) assert.notEqual((await connect(gw('round-robin'), `rf${i}`, open)).node, 'n9');
      for (let i = 0; i < 3; i++) assert.notEqual((await connect(gw('least-conn'), `lf${i}`, open)).node, 'n9');
      assert.equal(reached, 0, 'no upgrade reached the failing node');
    } finally {
      await closeAll();
      await registry.close();
      redis.disconnect();
      sub.disconnect();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it("closes both sides: a node's close code reaches the client, a vanished client leaves the node", async () => {
    try {
      const g = gw('hash');
      const kicked = await connect(g, 'kicked', open);
      assert.equal(g.gateway.connections, 1);
      assert.equal((await api(g, 'POST', '/v1/disconnect', { user: 'kicked' })).status, 200);
      assert.equal((await kicked.client.waitClose()).code, 4003);
      await eventually(() => g.gateway.connections === 0, { ...WAIT, message: 'the gateway to drop the closed connection' });
      const vanish = await connect(g, 'vanish', open);
      assert.equal((await api(g, 'GET', '/v1/users/vanish')).body.online, true);
      vanish.client.ws.terminate(); // TCP gone, no close frame
      await eventually(async () => (await api(g, 'GET', '/v1/users/vanish')).body.online === false, {
        ...WAIT,
        message: 'the node to drop the session',
      });
      assert.equal(g.gateway.connections, 0);
    } finally {
      await closeAll();
    }
  });

  it('skips a node that refuses the connection at once, before any probe notices, for upgrades and HTTP', async () => {
    // A fake node that passes its first probe, then stops listening; this gateway probes once a minute.
    const fake: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ready', node: 'n8', connections: 0 }));
    });
    const port = await freePort();
    await new Promise<void>((resolve) => fake.listen(port, '127.0.0.1', resolve));
    const redis = await connectRedis();
    const sub = await connectRedis();
    const registry = new RedisRegistry({ redis, sub, prefix: cluster.prefix, nodeLeaseMs: LEASE_MS });
    const slow = await startGateway(cluster.prefix, 'round-robin', { nodeId: 'gw-slow', gatewayProbeIntervalMs: 60_000 });
    try {
      await registry.register({ node: 'n8', url: `http://127.0.0.1:${port}`, connections: 0, startedAt: Date.now() });
      await eventually(() => slow.gateway.health.live().some((n) => n.id === 'n8'), {
        ...WAIT,
        message: 'the gateway to count n8 as live',
      });
      await new Promise<void>((resolve) => {
        fake.close(() => resolve());
        fake.closeAllConnections();
      });
      for (let i = 0; i < 4; i++) assert.ok(['n1', 'n2', 'n3'].includes((await connect(slow, `sk${i}`, open)).node));
      assert.match(slow.gateway.health.get('n8')!.reason, /connect failed/);
      assert.equal(await metric(slow.url, 'switchboard_gateway_upgrades_total', 'result="proxied"'), 4);
      // HTTP: bring n8 back (it restarts: a new start time makes the gateway probe it), then refuse again.
      await new Promise<void>((resolve) => fake.listen(port, '127.0.0.1', resolve));
      await registry.register({ node: 'n8', url: `http://127.0.0.1:${port}`, connections: 0, startedAt: Date.now() + 1 });
      await eventually(() => slow.gateway.health.live().some((n) => n.id === 'n8'), {
        ...WAIT,
        message: 'the gateway to count the restarted n8 as live',
      });
      await new Promise<void>((resolve) => {
        fake.close(() => resolve());
        fake.closeAllConnections();
      });
      for (let i = 0; i < 4; i++) assert.equal((await api(slow, 'GET', '/v1/nodes')).status, 200);
      assert.match(slow.gateway.health.get('n8')!.reason, /connection refused/);
    } finally {
      await closeAll();
      await slow.stop();
      await registry.close();
      redis.disconnect();
      sub.disconnect();
    }
  });

  it('wss through the `switchboard gateway` process with a self-signed certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
    const port = await freePort();
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost',
        '-days',
        '1',
      ],
      { stdio: 'ignore' },
    );
    let stderr = '';
    const child = spawn(
      process.execPath,
      [
        BIN,
        'gateway',
        '--port',
        String(port),
        '--tls-cert',
        join(dir, 'cert.pem'),
        '--tls-key',
        join(dir, 'key.pem'),
        '--gateway-policy',
        'round-robin',
      ],
      {
        env: {
          ...process.env,
          REDIS_URL,
          SWITCHBOARD_REDIS_PREFIX: cluster.prefix,
          SWITCHBOARD_JWT_SECRET: SECRET,
          SWITCHBOARD_API_KEY: API_KEY,
          SWITCHBOARD_PRESENCE_TTL_MS: String(LEASE_MS),
          SWITCHBOARD_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const ca = readFileSync(join(dir, 'cert.pem'));
      await eventually(() => stderr.includes(`on https://127.0.0.1:${port}`) || child.exitCode !== null, {
        ...WAIT,
        timeoutMs: 10_000,
        message: 'the gateway process to listen',
      });
      assert.equal(child.exitCode, null, stderr);
      const wss = `wss://localhost:${port}/ws`;
      const dave = new TestClient(`${wss}?token=${await token('dave')}`, { ca });
      open.push(dave);
      const welcome = await dave.next((f) => f.type === 'welcome');
      assert.ok(['n1', 'n2', 'n3'].includes(welcome.node as string));
      const other = nodes.find((n) => n.id !== welcome.node)!;
      const erin = await connect(other, 'erin', open);
      await dave.request({ type: 'send', to: 'erin', topic: 'tls', data: { ok: true } });
      assert.deepEqual((await erin.client.next((f) => f.type === 'message' && f.topic === 'tls')).data, { ok: true });
      // Without trusting the certificate the handshake fails: TLS really is on.
      const untrusted = new TestClient(`${wss}?token=${await token('dave')}`);
      await assert.rejects(untrusted.opened, /self.signed|certificate/i);
      const ready = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        httpsRequest(`https://localhost:${port}/readyz`, { ca }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      });
      assert.equal(ready.status, 200);
      assert.equal(JSON.parse(ready.body).status, 'ready');
    } finally {
      await closeAll();
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `the gateway exits 0 on SIGTERM; stderr: ${stderr}`);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Last: it kills a node.
  it('after kill -9 of a node, new connections go to the others, and its users are placed on live owners', async () => {
    try {
      const victim = nodes[2]!;
      await victim.kill9();
      // Right away, whether or not a probe noticed yet (a refused connect is retried on another node).
      for (let i = 0; i < 6; i++) assert.notEqual((await connect(gw('round-robin'), `k${i}`, open)).node, 'n3');
      const ring2 = HashRing.from(['n1', 'n2']);
      const orphans = Array.from({ length: 100 }, (_, i) => `o${i}`)
        .filter((u) => ring3.nodeFor(u) === 'n3')
        .slice(0, 4);
      for (const user of orphans) assert.equal((await connect(gw('hash'), user, open)).node, ring2.nodeFor(user), user);
      assert.notEqual((await connect(gw('least-conn'), 'lk', open)).node, 'n3');
      // Once the lease lapses the cluster's ring drops n3: nodes and the gateway name live owners.
      await eventually(() => !gw('hash').gateway.health.ring.nodes.includes('n3'), {
        ...WAIT,
        timeoutMs: LEASE_MS * 3,
        message: 'the gateway to drop n3 from the ring',
      });
      for (const user of orphans) {
        assert.equal((await api(gw('hash'), 'GET', `/v1/route?user=${user}`)).body.node, ring2.nodeFor(user));
      }
    } finally {
      await closeAll();
    }
  });
});
