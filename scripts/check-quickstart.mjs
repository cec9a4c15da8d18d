#!/usr/bin/env node
// Checks the README's quick start on this checkout, as a new user would run it: `npm start`
// (the embedded default, dev mode) serves the demo page, mints a dev token, and relays a message
// over a real WebSocket; `npx switchboard token` works; SIGTERM drains and exits 0.
// Run after `npm ci`. Exits non-zero with a message on the first failure.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import WebSocket from 'ws';

const root = new URL('..', import.meta.url).pathname;
const fail = (msg) => {
  console.error(`quickstart check FAILED: ${msg}`);
  process.exitCode = 1;
  throw new Error(msg);
};

const port = await new Promise((resolve) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const p = srv.address().port;
    srv.close(() => resolve(p));
  });
});

const child = spawn('npm', ['start', '--silent'], {
  cwd: root,
  env: { ...process.env, PORT: String(port) },
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: true,
});
let stderr = '';
child.stderr.on('data', (d) => (stderr += d));
child.stdout.resume();
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
try {
  const deadline = Date.now() + 30_000;
  while (!stderr.includes('DEV MODE')) {
    if (Date.now() > deadline) fail(`npm start printed no DEV MODE banner in 30 s; stderr:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const base = `http://127.0.0.1:${port}`;
  const page = await fetch(`${base}/`);
  if (page.status !== 200 || !(await page.text()).includes('<html')) fail('demo page at / is not served');
  const { token } = await (await fetch(`${base}/dev/token?user=newcomer`)).json();
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${token}`);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const waitFor = async (pred, what) => {
    const until = Date.now() + 5000;
    while (!frames.some(pred)) {
      if (Date.now() > until) fail(`no ${what}; frames: ${JSON.stringify(frames)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor((f) => f.type === 'welcome', 'welcome');
  ws.send(JSON.stringify({ type: 'send', to: 'newcomer', topic: 'hello', data: 'first message', id: 1 }));
  await waitFor((f) => f.type === 'message' && f.data === 'first message' && f.from === 'newcomer', 'message back');
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));

  const jwt = execFileSync(
    'npx',
    ['--no-install', 'switchboard', 'token', '--user', 'cli', '--secret', 'a-secret-of-at-least-32-characters!!'],
    { cwd: root, encoding: 'utf8' },
  ).trim();
  if (jwt.split('.').length !== 3) fail(`npx switchboard token printed "${jwt}"`);

  process.kill(child.pid, 'SIGTERM'); // npm forwards it to the node process and exits with its code
  const code = await Promise.race([closed, new Promise((r) => setTimeout(() => r('timeout'), 12_000))]);
  if (code !== 1001) fail(`on SIGTERM the session got ${code}, expected 1001`);
  const result = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 12_000))]);
  if (result === 'timeout' || result.code !== 0) fail(`npm start did not exit 0 after SIGTERM: ${JSON.stringify(result)}`);
  console.log(
    `quickstart check passed: npm start served the demo page, relayed a message on port ${port}, npx switchboard token worked, SIGTERM drained with 1001 and exit 0`,
  );
} finally {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
