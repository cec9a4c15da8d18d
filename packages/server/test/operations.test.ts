/**
 * Operations (PROTOCOL.md "Shutdown"): logs are JSON lines tagged with the node id and never carry
 * a token, the JWT secret or the API key; SIGTERM drains the real CLI process (503 on /readyz and
 * on upgrades, 1001 to every session, exit 0 within the drain timeout).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { redactUrl } from '../src/index.js';
import { API_KEY, SECRET, TestClient, api, sleep, startNode, token, type TestNode } from './helpers.js';

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));

describe('redactUrl', () => {
  it('redacts the token query parameter and keeps the rest of the URL', () => {
    assert.equal(redactUrl('/ws?token=eyJhbGciOi.abc.def&batch=1'), '/ws?token=[REDACTED]&batch=1');
    assert.equal(redactUrl('/ws?batch=1&token=abc'), '/ws?batch=1&token=[REDACTED]');
  });

  it('redacts access_token and api_key, in any letter case', () => {
    assert.equal(redactUrl('/x?access_token=a1&api_key=k2'), '/x?access_token=[REDACTED]&api_key=[REDACTED]');
    assert.equal(redactUrl('/x?TOKEN=abc'), '/x?TOKEN=[REDACTED]');
  });

  it('stops at a fragment', () => {
    assert.equal(redactUrl('/x?token=abc#frag'), '/x?token=[REDACTED]#frag');
  });

  it('leaves URLs without secrets unchanged, and undefined as undefined', () => {
    assert.equal(redactUrl('/v1/history/user:bob?since=3&limit=10'), '/v1/history/user:bob?since=3&limit=10');
    assert.equal(redactUrl(undefined), undefined);
  });
});

describe('logs', () => {
  let node: TestNode;
  const secrets: Record<string, string> = { 'JWT secret': SECRET, 'API key': API_KEY };

  before(async () => {
    // Dev mode so that the dev token endpoint exists; debug so that request URLs are logged.
    node = await startNode({ logLevel: 'debug', nodeId: 'n-ops' }, 'dev');

    const forged = await token('mallory', {}, { secret: 'a-different-secret-0123456789-abcdefgh' });
    secrets['rejected token'] = forged;
    const bad = new TestClient(`${node.wsUrl}?token=${forged}`);
    assert.equal((await bad.waitClose()).code, 4001);

    const good = await token('alice', { groups: ['ops'] });
    secrets['query token'] = good;
    const alice = new TestClient(`${node.wsUrl}?token=${good}&batch=1`);
    await alice.next((f) => f.type === 'welcome');

    const headerToken = await token('bob');
    secrets['header token'] = headerToken;
    const bob = new TestClient(node.wsUrl, { headers: { authorization: `Bearer ${headerToken}` } });
    await bob.next((f) => f.type === 'welcome');

    // A browser opening the socket URL as a page: a plain HTTP request whose URL holds a token.
    const pageToken = await token('carol');
    secrets['token in an HTTP URL'] = pageToken;
    assert.equal((await fetch(`${node.url}/ws?token=${pageToken}`)).status, 426);

    assert.equal((await api(node, 'POST', '/v1/publish', { channel: 'user:alice', topic: 't', data: 1 })).status, 200);
    assert.equal((await api(node, 'GET', '/v1/presence/group:ops')).status, 200);
    assert.equal((await api(node, 'GET', '/v1/nodes', undefined, 'wrong-key-0123456789')).status, 401);

    const dev = await fetch(`${node.url}/dev/token?user=dave&groups=ops`);
    assert.equal(dev.status, 200);
    secrets['dev token'] = ((await dev.json()) as { token: string }).token;

    await Promise.all([alice.close(), bob.close()]);
    await node.stop();
  });

  after(() => node.stop());

  it('writes every line as JSON with the node id', () => {
    assert.ok(node.logs.length > 5, `expected some log lines, got ${node.logs.length}`);
    for (const line of node.logs) {
      let entry: { node?: unknown; msg?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        assert.fail(`log line is not JSON: ${line}`);
      }
      assert.equal(entry.node, 'n-ops', line);
    }
  });

  it('never contains a token, the JWT secret or the API key', () => {
    for (const [what, value] of Object.entries(secrets)) {
      const leaks = node.logs.filter((line) => line.includes(value));
      assert.deepEqual(leaks, [], `the ${what} appears in the logs`);
    }
    // No fragment of a JWT either (a logged token cut short is still a leak).
    for (const line of node.logs) assert.doesNotMatch(line, /eyJ[A-Za-z0-9_-]{10,}/, line);
  });

  it('logs request URLs with token=[REDACTED]', () => {
    const urls = node.logs.map((line) => (JSON.parse(line) as { url?: unknown }).url).filter((u): u is string => typeof u === 'string');
    assert.ok(
      urls.some((u) => u.startsWith('/ws?token=[REDACTED]')),
      `no logged URL shows a redacted token: ${JSON.stringify(urls)}`,
    );
  });

  it('logs the rejected token with a reason, not the token', () => {
    const rejected = node.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.msg === 'token rejected');
    assert.equal(rejected.length, 1, 'the 4001 was logged once');
    // Signed with another secret: the reason names the signature, as the 4001 close reason does.
    assert.equal(rejected[0]!.reason, 'bad signature');
    const forged = secrets['rejected token']!;
    const [, payload, signature] = forged.split('.');
    for (const [what, text] of [
      ['the token', forged],
      ['its payload', payload!],
      ['its signature', signature!],
    ] as const) {
      assert.deepEqual(
        node.logs.filter((line) => line.includes(text)),
        [],
        `${what} appears in the logs`,
      );
    }
  });
});

/** A spawned `switchboard` process with its stderr collected. */
interface Cli {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnCli(args: string[], env: Record<string, string>): Cli {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHBOARD_') && k !== 'PORT' && k !== 'HOST'),
  );
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stderr: () => err, exited };
}

/** Waits for the start-up banner and returns the URL it names. */
async function bannerUrl(cli: Cli, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = / on (http:\/\/127\.0\.0\.1:\d+)/.exec(cli.stderr());
    if (match) return match[1]!;
    if (cli.child.exitCode !== null) throw new Error(`exited ${cli.child.exitCode} before the banner: ${cli.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no banner within ${timeoutMs} ms: ${cli.stderr()}`);
    await sleep(20);
  }
}

/** The status of GET url, or 'refused' when nothing answers. */
async function statusOf(url: string): Promise<number | 'refused'> {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 'refused';
  }
}

describe('drain on SIGTERM (real CLI)', () => {
  it('answers 503, closes sessions with 1001 and exits 0 within drainTimeoutMs', async () => {
    const drainTimeoutMs = 1500;
    const cli = spawnCli(['node', '--port', '0', '--drain-timeout-ms', String(drainTimeoutMs), '--node-id', 'n-drain'], {
      SWITCHBOARD_JWT_SECRET: SECRET,
      SWITCHBOARD_API_KEY: API_KEY,
      SWITCHBOARD_LOG_LEVEL: 'warn',
    });
    const clients: TestClient[] = [];
    try {
      const url = await bannerUrl(cli);
      const wsUrl = url.replace(/^http/, 'ws') + '/ws';
      assert.equal(await statusOf(`${url}/readyz`), 200);
      const polite = new TestClient(`${wsUrl}?token=${await token('polite')}`);
      // A client that has stopped reading never answers the close, so the drain must wait for
      // its deadline: that keeps the server up long enough to observe it draining.
      const stuck = new TestClient(`${wsUrl}?token=${await token('stuck')}`);
      clients.push(polite, stuck);
      await Promise.all([polite.next((f) => f.type === 'welcome'), stuck.next((f) => f.type === 'welcome')]);
      const stuckSocket = (stuck.ws as unknown as { _socket: Socket })._socket;
      stuckSocket.pause();

      const signalledAt = Date.now();
      cli.child.kill('SIGTERM');

      let readyz: number | 'refused' = 200;
      while (readyz === 200 && Date.now() - signalledAt < 5000) readyz = await statusOf(`${url}/readyz`);
      assert.equal(readyz, 503, '/readyz must answer 503 while draining');

      const late = new TestClient(`${wsUrl}?token=${await token('late')}`);
      clients.push(late);
      await assert.rejects(late.opened, (err: { status?: number }) => err.status === 503);

      const { code } = await polite.waitClose();
      assert.equal(code, 1001);

      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([
        cli.exited,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), drainTimeoutMs + 3000))),
      ]);
      clearTimeout(timer);
      const elapsed = Date.now() - signalledAt;
      assert.ok(exit, `the process did not exit within ${elapsed} ms of SIGTERM`);
      assert.deepEqual(exit, { code: 0, signal: null }, cli.stderr());
      assert.ok(elapsed < drainTimeoutMs + 2000, `exit took ${elapsed} ms`);

      // The stuck client was sent the 1001 too; it reads it once it resumes.
      stuckSocket.resume();
      assert.equal((await stuck.waitClose()).code, 1001);
    } finally {
      cli.child.kill('SIGKILL');
      for (const c of clients) c.ws.terminate();
    }
  });
});

describe('drain spread (drainSpreadMs)', () => {
  /** Drains a node holding `count` sessions; returns when each client saw its close, from the drain's start. */
  async function closeTimes(count: number, drainSpreadMs: number): Promise<{ times: number[]; codes: Set<number>; tookMs: number }> {
    const node = await startNode({ drainSpreadMs, drainTimeoutMs: 5000 });
    const clients = await Promise.all(Array.from({ length: count }, (_, i) => TestClient.connect(node, `u${i}`)));
    const started = Date.now();
    const closes = clients.map((c) => c.waitClose().then(({ code }) => ({ code, at: Date.now() - started })));
    await node.node.drain();
    const tookMs = Date.now() - started;
    const seen = await Promise.all(closes);
    return { times: seen.map((s) => s.at).sort((a, b) => a - b), codes: new Set(seen.map((s) => s.code)), tookMs };
  }

  it('closes the sessions with 1001 evenly over the window, not all at once', async () => {
    const { times, codes, tookMs } = await closeTimes(100, 1000);
    assert.deepEqual([...codes], [1001]);
    assert.ok(times.at(-1)! - times[0]! >= 700, `closes spread over ${times.at(-1)! - times[0]!} ms`);
    // No tenth of the window carries more than a quarter of the closes.
    for (let from = 0; from < 1000; from += 100) {
      const inSlice = times.filter((t) => t >= from && t < from + 100).length;
      assert.ok(inSlice <= 25, `${inSlice} closes between ${from} and ${from + 100} ms`);
    }
    assert.ok(tookMs < 5000, `drain took ${tookMs} ms`);
  });

  it('closes every session at once with a spread of 0', async () => {
    const { times, codes } = await closeTimes(100, 0);
    assert.deepEqual([...codes], [1001]);
    assert.ok(times.at(-1)! - times[0]! < 300, `closes spread over ${times.at(-1)! - times[0]!} ms`);
  });
});
