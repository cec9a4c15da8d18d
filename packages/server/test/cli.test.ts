/**
 * The `switchboard` command line, spawned as a user runs it: dev mode of `start`, the production
 * guard rails of `node`, option errors (exit 2 naming option, flag and env), `token`, and the
 * precedence flags > env > config file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt, jwtVerify } from 'jose';
import { SCHEMA_VERSION } from '../src/postgres/migrations.js';
import { API_KEY, SECRET, TestClient, startNode, sleep, token, type TestNode } from './helpers.js';
import { freePort } from './support/ports.js';
import { PostgresDatabase, postgresSkip } from './support/postgres.js';

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));

/** A spawned `switchboard` process with its output collected. */
interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Runs the bin with `args`; the environment is the test's minus every Switchboard variable, plus `env`. */
function spawnCli(args: string[], env: Record<string, string> = {}): Cli {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHBOARD_') && k !== 'PORT' && k !== 'HOST'),
  );
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs a command that is expected to exit by itself; resolves with its exit code and output. */
async function runToExit(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnCli(args, env);
  try {
    // A pending timer would keep this test file's process alive, so it is cleared on exit.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const code = await Promise.race([cli.exited, timeout]);
    clearTimeout(timer);
    if (code === 'timeout') throw new Error(`switchboard ${args.join(' ')} did not exit within ${timeoutMs} ms: ${cli.stderr()}`);
    return { code, stdout: cli.stdout(), stderr: cli.stderr() };
  } finally {
    cli.child.kill('SIGKILL');
  }
}

/** Waits for the start-up banner `switchboard …: node ID on URL`. */
async function banner(cli: Cli, timeoutMs = 10_000): Promise<{ nodeId: string; url: string; wsUrl: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = /node (\S+) on (http:\/\/\S+)\s+\(WebSocket (ws:\/\/\S+)\)/.exec(cli.stderr());
    if (match) return { nodeId: match[1]!, url: match[2]!, wsUrl: match[3]! };
    if (cli.child.exitCode !== null) throw new Error(`exited ${cli.child.exitCode} before the banner: ${cli.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no banner within ${timeoutMs} ms: ${cli.stderr()}`);
    await sleep(20);
  }
}

/** Starts a server command and waits for its banner; the process is killed by the `after` hook. */
async function serve(args: string[], env: Record<string, string> = {}): Promise<Cli & { nodeId: string; url: string; wsUrl: string }> {
  const cli = spawnCli(args, env);
  try {
    return { ...cli, ...(await banner(cli)) };
  } catch (err) {
    cli.child.kill('SIGKILL');
    throw err;
  }
}

/** Sends SIGKILL to the process and waits for it to go. */
async function kill(cli: Cli): Promise<void> {
  cli.child.kill('SIGKILL');
  await cli.exited;
}

after(async () => {
  for (const child of running) child.kill('SIGKILL');
});

describe('switchboard start without a secret (dev mode)', () => {
  let cli: Awaited<ReturnType<typeof serve>>;
  before(async () => (cli = await serve(['start', '--port', '0'])));
  after(() => kill(cli));

  it('prints DEV MODE with a generated secret and API key on stderr', async () => {
    const err = cli.stderr();
    assert.match(err, /DEV MODE/);
    const secret = /SWITCHBOARD_JWT_SECRET=(\S+)/.exec(err)?.[1];
    const apiKey = /SWITCHBOARD_API_KEY=(\S+)/.exec(err)?.[1];
    assert.ok(secret && secret.length >= 32, `no usable secret printed: ${err}`);
    assert.ok(apiKey && apiKey.length >= 16, `no usable API key printed: ${err}`);
    const res = await fetch(`${cli.url}/v1/nodes`, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(res.status, 200, 'the printed API key opens the HTTP API');
  });

  it('serves the demo page at /', async () => {
    const res = await fetch(`${cli.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await res.text(), /<html/i);
  });

  it('mints tokens at /dev/token that the node accepts, signed with the printed secret', async () => {
    const res = await fetch(`${cli.url}/dev/token?user=alice&groups=lobby`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { token: string };
    const secret = /SWITCHBOARD_JWT_SECRET=(\S+)/.exec(cli.stderr())![1]!;
    const { payload } = await jwtVerify(body.token, new TextEncoder().encode(secret), { algorithms: ['HS256'] });
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(payload.groups, ['lobby']);
    const client = new TestClient(`${cli.wsUrl}?token=${body.token}`);
    try {
      const welcome = await client.next((f) => f.type === 'welcome');
      assert.equal(welcome.user, 'alice');
      assert.ok('group:lobby' in welcome.subscriptions);
    } finally {
      client.ws.terminate();
    }
  });
});

describe('switchboard node', () => {
  it('refuses to start without a secret: exit 2 naming SWITCHBOARD_JWT_SECRET', async () => {
    const { code, stderr } = await runToExit(['node', '--port', '0']);
    assert.equal(code, 2);
    assert.match(stderr, /SWITCHBOARD_JWT_SECRET/);
    assert.doesNotMatch(stderr, /DEV MODE/);
  });

  describe('with a secret', () => {
    let cli: Awaited<ReturnType<typeof serve>>;
    before(async () => (cli = await serve(['node', '--port', '0'], { SWITCHBOARD_JWT_SECRET: SECRET })));
    after(() => kill(cli));

    it('does not serve /dev/token', async () => {
      const res = await fetch(`${cli.url}/dev/token?user=alice`);
      assert.equal(res.status, 404);
      assert.doesNotMatch(await res.text(), /eyJ/);
    });

    it('does not serve the demo page', async () => {
      assert.equal((await fetch(`${cli.url}/`)).status, 404);
      assert.equal((await fetch(`${cli.url}/index.html`)).status, 404);
    });

    it('prints neither DEV MODE nor the secret', () => {
      assert.doesNotMatch(cli.stderr(), /DEV MODE/);
      assert.ok(!cli.stderr().includes(SECRET));
      assert.ok(!cli.stdout().includes(SECRET));
    });

    it('accepts a client token signed with the secret', async () => {
      const client = new TestClient(`${cli.wsUrl}?token=${await token('erin')}`);
      try {
        assert.equal((await client.next((f) => f.type === 'welcome')).user, 'erin');
      } finally {
        client.ws.terminate();
      }
    });
  });
});

// Independent short-lived processes: run them side by side to keep the file fast.
describe('invalid options exit 2 naming the option, its flag and env name', { concurrency: true }, () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'switchboard-cli-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const env = { SWITCHBOARD_JWT_SECRET: SECRET };

  it('from a flag: --heartbeat-interval-ms abc', async () => {
    const { code, stderr } = await runToExit(['node', '--port', '0', '--heartbeat-interval-ms', 'abc'], env);
    assert.equal(code, 2, stderr);
    for (const part of ['heartbeatIntervalMs', '--heartbeat-interval-ms', 'SWITCHBOARD_HEARTBEAT_INTERVAL_MS'])
      assert.ok(stderr.includes(part), `${part} missing: ${stderr}`);
  });

  it('from the environment: SWITCHBOARD_MAX_PAYLOAD_BYTES=12', async () => {
    const { code, stderr } = await runToExit(['node', '--port', '0'], { ...env, SWITCHBOARD_MAX_PAYLOAD_BYTES: '12' });
    assert.equal(code, 2, stderr);
    for (const part of ['maxPayloadBytes', '--max-payload-bytes', 'SWITCHBOARD_MAX_PAYLOAD_BYTES'])
      assert.ok(stderr.includes(part), `${part} missing: ${stderr}`);
  });

  it('from a config file value: {"maxOutboundBytes": 10}', async () => {
    const file = join(dir, 'bad-value.json');
    writeFileSync(file, JSON.stringify({ maxOutboundBytes: 10 }));
    const { code, stderr } = await runToExit(['node', '--port', '0', '--config', file], env);
    assert.equal(code, 2, stderr);
    for (const part of ['maxOutboundBytes', '--max-outbound-bytes', 'SWITCHBOARD_MAX_OUTBOUND_BYTES'])
      assert.ok(stderr.includes(part), `${part} missing: ${stderr}`);
  });

  it('a config file with an unknown key names the key and the file', async () => {
    const file = join(dir, 'unknown-key.json');
    writeFileSync(file, JSON.stringify({ port: 0, heartbeatInterval: 1000 }));
    const { code, stderr } = await runToExit(['node', '--config', file], env);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes('heartbeatInterval'), stderr);
    assert.ok(stderr.includes(file), stderr);
  });

  it('a config file that is not JSON names the file', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ port: 0');
    const { code, stderr } = await runToExit(['node', '--config', file], env);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes(file), stderr);
  });
});

describe('switchboard token', { concurrency: true }, () => {
  let node: TestNode;
  before(async () => (node = await startNode({ nodeId: 'n-tok' })));
  after(() => node.stop());

  it('prints a JWT with sub, groups and exp from --user, --groups and --ttl', async () => {
    const { code, stdout, stderr } = await runToExit(['token', '--user', 'alice', '--groups', 'ops', '--ttl', '1h', '--secret', SECRET]);
    assert.equal(code, 0, stderr);
    const jwt = stdout.trim();
    assert.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const payload = decodeJwt(jwt);
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(payload.groups, ['ops']);
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Math.abs(payload.exp! - (now + 3600)) <= 60, `exp ${payload.exp} is not about now + 1h (${now + 3600})`);

    // A node with the same secret accepts it, with the group subscribed.
    const client = new TestClient(`${node.wsUrl}?token=${jwt}`);
    try {
      const welcome = await client.next((f) => f.type === 'welcome');
      assert.equal(welcome.user, 'alice');
      assert.ok('group:ops' in welcome.subscriptions);
    } finally {
      await client.close();
    }
  });

  it('takes the secret from SWITCHBOARD_JWT_SECRET', async () => {
    const { code, stdout, stderr } = await runToExit(['token', '--user', 'bob'], { SWITCHBOARD_JWT_SECRET: SECRET });
    assert.equal(code, 0, stderr);
    const { payload } = await jwtVerify(stdout.trim(), new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
    assert.equal(payload.sub, 'bob');
  });

  it('rejects a bad --ttl with exit 2 naming the flag, not a stack trace', async () => {
    const { code, stdout, stderr } = await runToExit(['token', '--user', 'alice', '--ttl', '1x', '--secret', SECRET]);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, '');
    assert.match(stderr, /--ttl/);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  });

  it('refuses a user id the node would reject, with exit 2', async () => {
    const { code, stdout, stderr } = await runToExit(['token', '--user', 'bad user', '--secret', SECRET]);
    assert.equal(code, 2, stderr);
    assert.equal(stdout, '');
    assert.match(stderr, /--user/);
  });

  it('refuses to mint without a secret, with exit 2', async () => {
    const { code, stdout, stderr } = await runToExit(['token', '--user', 'alice']);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /SWITCHBOARD_JWT_SECRET/);
  });
});

describe('configuration precedence: flags > env > config file', () => {
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchboard-cli-'));
    file = join(dir, 'switchboard.json');
    writeFileSync(file, JSON.stringify({ port: 0, nodeId: 'from-file', wsPath: '/file-socket', jwtSecret: SECRET, apiKey: API_KEY }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the config file values', async () => {
    const cli = await serve(['node', '--config', file]);
    try {
      assert.equal(cli.nodeId, 'from-file');
      assert.match(cli.wsUrl, /\/file-socket$/);
      const health = (await (await fetch(`${cli.url}/healthz`)).json()) as { node: string };
      assert.equal(health.node, 'from-file');
      // The file's secret and API key are in force too.
      const nodes = await fetch(`${cli.url}/v1/nodes`, { headers: { authorization: `Bearer ${API_KEY}` } });
      assert.equal(nodes.status, 200);
      const client = new TestClient(`${cli.wsUrl}?token=${await token('frank')}`);
      try {
        assert.equal((await client.next((f) => f.type === 'welcome')).node, 'from-file');
      } finally {
        client.ws.terminate();
      }
    } finally {
      await kill(cli);
    }
  });

  it('lets the environment override the file', async () => {
    const cli = await serve(['node', '--config', file], { SWITCHBOARD_NODE_ID: 'from-env' });
    try {
      assert.equal(cli.nodeId, 'from-env');
      assert.match(cli.wsUrl, /\/file-socket$/, 'options the env does not set still come from the file');
    } finally {
      await kill(cli);
    }
  });

  it('lets flags override the environment and the file', async () => {
    const cli = await serve(['node', '--config', file, '--node-id', 'from-flag', '--ws-path', '/flag-socket'], {
      SWITCHBOARD_NODE_ID: 'from-env',
    });
    try {
      assert.equal(cli.nodeId, 'from-flag');
      assert.match(cli.wsUrl, /\/flag-socket$/);
      const health = (await (await fetch(`${cli.url}/healthz`)).json()) as { node: string };
      assert.equal(health.node, 'from-flag');
    } finally {
      await kill(cli);
    }
  });
});

describe('switchboard migrate', { skip: postgresSkip }, () => {
  const db = new PostgresDatabase();
  before(() => db.create(false));
  after(() => db.drop());

  it('applies the schema once, then says it is up to date', async () => {
    const first = await runToExit(['migrate'], { DATABASE_URL: db.url });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`is at schema version ${SCHEMA_VERSION} \\(applied 1, 2, 3\\)`));
    const again = await runToExit(['migrate', '--database-url', db.url]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /is up to date/);
    const { rows } = await db
      .pool()
      .query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE 'switchboard_%'");
    assert.ok(Number(rows[0]!.n) >= 6, 'the tables exist');
  });

  it('says which database does not answer, without its password, and how to fix it', async () => {
    const port = await freePort();
    const { code, stderr } = await runToExit(['migrate'], { DATABASE_URL: `postgres://sb:hunter2-secret@127.0.0.1:${port}/nope` });
    assert.equal(code, 1);
    assert.match(stderr, /PostgreSQL is not reachable at postgres:\/\/sb:\[REDACTED\]@127\.0\.0\.1/);
    assert.match(stderr, /DATABASE_URL/);
    assert.doesNotMatch(stderr, /hunter2/);
  });

  it('needs a database URL', async () => {
    const { code, stderr } = await runToExit(['migrate']);
    assert.equal(code, 2);
    assert.match(stderr, /--database-url or DATABASE_URL/);
  });
});
