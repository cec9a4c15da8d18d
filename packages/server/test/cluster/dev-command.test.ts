/** `switchboard dev --nodes N`: a local cluster on Redis, one command, Ctrl-C stops it all. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestClient } from '../helpers.js';
import { connectRedis, deletePrefix, redisSkip } from '../redis-helpers.js';
import { eventually } from '../support/eventually.js';
import { natsSkip } from '../support/nats.js';
import { RabbitVhost, rabbitSkip } from '../support/rabbitmq.js';
import { PrivateServer } from '../support/servers.js';
import { freeConsecutivePorts, freePort } from './harness.js';

const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exit, stderr: () => stderr };
}

describe('switchboard dev', () => {
  it('starts N nodes on consecutive ports that form one cluster, and stops them all on SIGINT', { skip: redisSkip }, async () => {
    const port = await freeConsecutivePorts(4); // three nodes and the gateway
    const prefix = `sbtest:dev${port}:`;
    const dev = run(['dev', '--nodes', '3', '--port', String(port), '--redis-prefix', prefix]);
    try {
      const deadline = Date.now() + 15_000;
      while (!dev.stderr().includes('Ctrl-C stops them all')) {
        assert.ok(Date.now() < deadline && dev.child.exitCode === null, `no banner: ${dev.stderr()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 3; i++) assert.match(dev.stderr(), new RegExp(`n${i + 1}: http://127\\.0\\.0\\.1:${port + i}/`));
      assert.match(dev.stderr(), new RegExp(`gateway \\(policy hash\\): http://127\\.0\\.0\\.1:${port + 3}/`));
      const base = `http://127.0.0.1:${port}`;
      const { token: tokenA } = (await (await fetch(`${base}/dev/token?user=ann`)).json()) as { token: string };
      const { token: tokenB } = (await (await fetch(`http://127.0.0.1:${port + 2}/dev/token?user=ben`)).json()) as { token: string };
      const ann = new TestClient(`ws://127.0.0.1:${port}/ws?token=${tokenA}`);
      // ben comes in through the gateway, which places him on his owner node.
      const ben = new TestClient(`ws://127.0.0.1:${port + 3}/ws?token=${tokenB}`);
      await ann.next((f) => f.type === 'welcome');
      await ben.next((f) => f.type === 'welcome', 8000);
      await ann.request({ type: 'send', to: 'ben', topic: 'hi', data: 'across nodes' });
      const msg = await ben.next((f) => f.type === 'message');
      assert.deepEqual([msg.from, msg.data], ['ann', 'across nodes']);
      dev.child.kill('SIGINT');
      const [a, b] = await Promise.all([ann.waitClose(), ben.waitClose()]);
      assert.deepEqual([a.code, b.code], [1001, 1001]);
      assert.equal(await dev.exit, 0);
    } finally {
      dev.child.kill('SIGKILL');
      const redis = await connectRedis();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }
  });

  for (const broker of ['nats', 'rabbitmq'] as const) {
    it(
      `--broker ${broker}: the nodes carry messages to each other over ${broker}`,
      { skip: redisSkip ?? (broker === 'nats' ? natsSkip : rabbitSkip) },
      async () => {
        const port = await freeConsecutivePorts(3);
        const prefix = `sbtest:dev${port}:`;
        const nats = broker === 'nats' ? await PrivateServer.nats() : undefined;
        const vhost = broker === 'rabbitmq' ? new RabbitVhost() : undefined;
        await vhost?.create();
        const where = nats ? ['--nats-url', `nats://127.0.0.1:${nats.port}`] : ['--amqp-url', vhost!.url()];
        const dev = run([
          'dev',
          '--nodes',
          '2',
          '--no-gateway',
          '--broker',
          broker,
          ...where,
          '--port',
          String(port),
          '--redis-prefix',
          prefix,
        ]);
        try {
          await eventually(
            () => dev.stderr().includes('Ctrl-C stops them all') || (dev.child.exitCode === null ? false : assert.fail(dev.stderr())),
            { timeoutMs: 20_000 },
          );
          assert.match(dev.stderr(), new RegExp(`broker ${broker} \\(`));
          assert.ok(!dev.stderr().includes('guest:guest'), 'no password in the banner');
          const tokenOf = async (p: number, user: string) =>
            ((await (await fetch(`http://127.0.0.1:${p}/dev/token?user=${user}`)).json()) as { token: string }).token;
          const ann = new TestClient(`ws://127.0.0.1:${port}/ws?token=${await tokenOf(port, 'ann')}`);
          const ben = new TestClient(`ws://127.0.0.1:${port + 1}/ws?token=${await tokenOf(port + 1, 'ben')}`);
          await ann.next((f) => f.type === 'welcome');
          await ben.next((f) => f.type === 'welcome');
          assert.equal((await ann.request({ type: 'send', to: 'ben', topic: 'hi', data: `over ${broker}` })).ok, true);
          assert.equal((await ben.next((f) => f.type === 'message')).data, `over ${broker}`);
          dev.child.kill('SIGINT');
          assert.equal(await dev.exit, 0);
        } finally {
          dev.child.kill('SIGKILL');
          await nats?.stop();
          await vhost?.delete();
          const redis = await connectRedis();
          await deletePrefix(redis, prefix);
          redis.disconnect();
        }
      },
    );
  }

  it('says clearly when Redis is not reachable', async () => {
    const dev = run(['dev', '--nodes', '2', '--port', String(await freePort()), '--redis-url', 'redis://127.0.0.1:1']);
    assert.equal(await dev.exit, 1);
    assert.match(dev.stderr(), /Redis is not reachable at redis:\/\/127\.0\.0\.1:1 \(REDIS_URL\).*redis-server/);
  });

  it('says clearly when the broker is not reachable, without its password', { skip: redisSkip }, async () => {
    for (const [flags, env] of [
      [['--broker', 'nats', '--nats-url', 'nats://user:s3cret@127.0.0.1:1'], 'NATS_URL'],
      [['--broker', 'rabbitmq', '--amqp-url', 'amqp://guest:s3cret@127.0.0.1:1'], 'AMQP_URL'],
    ] as const) {
      const dev = run(['dev', '--nodes', '1', '--no-gateway', '--port', String(await freePort()), ...flags]);
      assert.equal(await dev.exit, 1, dev.stderr());
      assert.match(dev.stderr(), new RegExp(`^switchboard: .*${env}`, 'm'));
      assert.ok(!dev.stderr().includes('s3cret'), `no password in: ${dev.stderr()}`);
    }
  });
});
