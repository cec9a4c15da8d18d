/**
 * Redis goes away and comes back (a private redis-server on its own port, killed and restarted
 * empty): /readyz turns 503, publishes fail fast with `unavailable` (never silently dropped),
 * local sessions stay up, and everything resumes by itself; the lost history gives new epochs, so
 * a resuming client is told recovered:false.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { encodeResume } from '@switchboard/protocol';
import { TestClient, api, sleep } from '../helpers.js';
import { Cluster, freePort, type NodeProcess } from './harness.js';

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
const skip = REDIS_SERVER ? undefined : process.env.CI === 'true' ? undefined : 'redis-server binary not installed';

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return child;
    if (Date.now() > deadline) throw new Error('private redis-server did not start');
    await sleep(50);
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
  return Date.now() - start;
}

const readyz = async (n: NodeProcess) => (await fetch(`${n.url}/readyz`)).status;

describe('Redis outage', { skip }, () => {
  let port: number;
  let redis: ChildProcess;
  let cluster: Cluster;
  let n1: NodeProcess, n2: NodeProcess;
  const open: TestClient[] = [];

  before(async () => {
    port = await freePort();
    redis = await startRedis(port);
    cluster = new Cluster({ REDIS_URL: `redis://127.0.0.1:${port}`, SWITCHBOARD_PRESENCE_TTL_MS: '3000' });
    [n1, n2] = await Promise.all([cluster.start('o1'), cluster.start('o2')]);
  });
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await Promise.all(cluster.nodes.map((n) => n.stop()));
    redis.kill('SIGKILL');
  });

  it('fails fast while Redis is down, keeps sessions, and recovers by itself with new epochs', async () => {
    const alice = await TestClient.connect(n1, 'alice', { groups: ['g'] });
    const bob = await TestClient.connect(n2, 'bob', { groups: ['g'] });
    open.push(alice, bob);
    const before = await alice.request({ type: 'publish', channel: 'group:g', topic: 't', data: 'before' });
    assert.equal(before.ok, true);
    await bob.next((f) => f.type === 'message' && f.data === 'before');
    const bobWelcome = bob.frames[0]!;

    redis.kill('SIGKILL');
    await until('both nodes to report not ready', async () => (await readyz(n1)) === 503 && (await readyz(n2)) === 503);

    const started = Date.now();
    const failed = await alice.request({ type: 'publish', channel: 'group:g', topic: 't', data: 'during' });
    assert.deepEqual({ ok: failed.ok, code: failed.error?.code }, { ok: false, code: 'unavailable' });
    const viaApi = await api(n2, 'POST', '/v1/publish', { channel: 'group:g', topic: 't', data: 'during-api' });
    assert.deepEqual({ status: viaApi.status, code: viaApi.body.error?.code }, { status: 503, code: 'unavailable' });
    assert.ok(Date.now() - started < 2000, 'publishes fail fast');
    const pong = await alice.request({ type: 'ping' });
    assert.equal(pong.ok, true, 'local sessions keep working');
    assert.equal(alice.closeCode, undefined);
    assert.equal(bob.closeCode, undefined);

    redis = await startRedis(port);
    const back = await until('both nodes to be ready again', async () => (await readyz(n1)) === 200 && (await readyz(n2)) === 200);
    assert.ok(back < 15_000);
    for (const n of [n1, n2]) {
      const metrics = await (await fetch(`${n.url}/metrics`)).text();
      assert.match(metrics, /^switchboard_broker_reconnects_total\{node="[^"]+"\} [1-9]/m, 'the reconnect is counted');
      assert.match(metrics, /^switchboard_broker_up\{node="[^"]+"\} 1$/m);
    }

    // Publishing and cross-node delivery work again (the broker resubscribed); history was lost,
    // so the channel has a new epoch and starts again at offset 1.
    let after: Record<string, unknown> = {};
    await until('a publish to succeed', async () => {
      after = await alice.request({ type: 'publish', channel: 'group:g', topic: 't', data: 'after' });
      return after.ok === true;
    });
    const live = await bob.next((f) => f.type === 'message' && f.data === 'after');
    assert.notEqual(live.epoch, before.epoch);
    assert.equal(live.offset, after.offset);
    assert.equal(bob.messages().filter((m) => m.data === 'during' || m.data === 'during-api').length, 0, 'nothing accepted while down');

    // A client resuming from before the loss is told the gap cannot be filled.
    const resumed = await TestClient.connect(
      n1,
      'bob',
      { groups: ['g'] },
      `&resume=${encodeResume({ 'group:g': bobWelcome.subscriptions['group:g'] })}`,
    );
    open.push(resumed);
    assert.equal(resumed.frames[0]!.subscriptions['group:g'].recovered, false);

    // Presence is rebuilt from the nodes' leases.
    await until('presence to list alice and bob again', async () => {
      const res = await api(n2, 'GET', '/v1/presence/group:g');
      const users = (res.body.users ?? []).map((u: { user: string }) => u.user).sort();
      return JSON.stringify(users) === JSON.stringify(['alice', 'bob']);
    });
  });
});
