/**
 * The nginx configuration of docs/deploy.md, run by Debian's nginx (package `nginx`) in front of
 * two node processes on Redis: WebSocket sessions land on both nodes (round-robin), messages flow
 * between users on different nodes, and the HTTP API works through it. The config block is read
 * from the doc, so the documented configuration is the tested one. Skipped only outside CI when
 * nginx is not installed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestClient, api, sleep, token, type TestNode } from './helpers.js';
import { Cluster, type NodeProcess } from './cluster/harness.js';
import { freePort } from './support/ports.js';
import { redisSkip } from './redis-helpers.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const nginxSkip = NGINX ? undefined : process.env.CI === 'true' ? undefined : 'nginx is not installed (apt-get install -y nginx)';

/** The ```nginx block of docs/deploy.md with the test's port and upstream servers. */
function documentedConfig(listen: number, servers: string[]): string {
  const doc = readFileSync(new URL('../../../docs/deploy.md', import.meta.url), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
  if (!block) throw new Error('docs/deploy.md has no ```nginx block');
  const upstreamLines = block.split('\n').filter((l) => /^\s*server \S+:\d+/.test(l));
  assert.ok(upstreamLines.length > 0 && /listen 80;/.test(block), 'the documented block has upstream servers and `listen 80;`');
  let replaced = false;
  const lines = block.split('\n').flatMap((line) => {
    if (!/^\s*server \S+:\d+/.test(line)) return [line];
    if (replaced) return [];
    replaced = true;
    // Keep the documented parameters (max_fails …) of each server line.
    return servers.map((addr) => line.replace(/server \S+:\d+/, `server ${addr}`));
  });
  return lines.join('\n').replace('listen 80;', `listen 127.0.0.1:${listen};`);
}

describe('nginx in front of two nodes (docs/deploy.md)', { skip: redisSkip ?? nginxSkip }, () => {
  const cluster = new Cluster();
  let nodes: NodeProcess[] = [];
  let dir = '';
  let nginx: ChildProcess | undefined;
  let proxy: TestNode;
  const open: TestClient[] = [];

  before(async () => {
    if (!NGINX) throw new Error('nginx is not installed: in CI, .ci/run must `apt-get install -y nginx`');
    nodes = await Promise.all(['n1', 'n2'].map((id) => cluster.start(id)));
    dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
    // nginx's workers run as an unprivileged user when the master is root: they must reach the dir.
    chmodSync(dir, 0o755);
    const port = await freePort();
    const config = [
      'daemon off;',
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${dir}/access.log;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t}_temp;`),
      documentedConfig(
        port,
        nodes.map((n) => `127.0.0.1:${n.port}`),
      ),
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'nginx.conf'), config);
    let stderr = '';
    nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
    nginx.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    proxy = { url, wsUrl: `ws://127.0.0.1:${port}/ws`, logs: [], stop: async () => undefined, node: undefined as never };
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (nginx.exitCode !== null)
        throw new Error(
          `nginx exited ${nginx.exitCode}: ${stderr} ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`,
        );
      const status = await fetch(`${url}/readyz`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer on ${url}: ${stderr}`);
      await sleep(100);
    }
  });

  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx!.once('exit', resolve));
      nginx.kill('SIGTERM'); // fast shutdown of master and workers
      await exited;
    }
    await cluster.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function connect(user: string, claims: Record<string, unknown> = {}): Promise<{ client: TestClient; node: string }> {
    const client = new TestClient(`${proxy.wsUrl}?token=${await token(user, claims)}`);
    open.push(client);
    const welcome = await client.next((f) => f.type === 'welcome');
    return { client, node: welcome.node as string };
  }

  it('spreads WebSocket sessions over both nodes and carries messages between them', async () => {
    const sessions = [];
    for (let i = 0; i < 6; i++) sessions.push({ user: `ng${i}`, ...(await connect(`ng${i}`, { groups: ['lobby'] })) });
    const placed = sessions.map((s) => s.node);
    assert.deepEqual([...new Set(placed)].sort(), ['n1', 'n2'], `placed ${placed}`);
    // Round-robin: three on each.
    assert.equal(placed.filter((n) => n === 'n1').length, 3, `placed ${placed}`);

    const a = sessions.find((s) => s.node === 'n1')!;
    const b = sessions.find((s) => s.node === 'n2')!;
    const sent = await a.client.request({ type: 'send', to: b.user, topic: 'chat', data: { text: 'across nginx' } });
    assert.equal(sent.ok, true);
    const got = await b.client.next((f) => f.type === 'message' && f.channel === `user:${b.user}`);
    assert.deepEqual([got.from, got.data], [a.user, { text: 'across nginx' }]);

    // A group publication from n2 reaches every member on both nodes, once.
    const pub = await b.client.request({ type: 'publish', channel: 'group:lobby', topic: 'hello', data: { n: 1 } });
    assert.equal(pub.ok, true);
    for (const s of sessions) {
      const m = await s.client.next((f) => f.type === 'message' && f.channel === 'group:lobby' && f.topic === 'hello');
      assert.equal(m.offset, pub.offset);
    }
  });

  it('passes bare ping/pong and the HTTP API through', async () => {
    const { client } = await connect('pinger');
    client.send('ping');
    await client.next((f) => f.type === 'pong' && f.bare === true);
    const res = await api(proxy, 'POST', '/v1/publish', { channel: 'user:pinger', topic: 'api', data: { via: 'nginx' } });
    assert.equal(res.status, 200);
    assert.deepEqual((await client.next((f) => f.type === 'message' && f.topic === 'api')).data, { via: 'nginx' });
    assert.equal((await api(proxy, 'GET', '/v1/nodes', undefined, null)).status, 401);
  });
});
