/**
 * No secret in any log (issue 15, S6), end to end: a `switchboard node` process logging at `debug`
 * (the most it says) is given every kind of secret it knows — the JWT secret, the API key, the
 * webhook secret, a password in DATABASE_URL and in NATS_URL — and then used the way clients,
 * backends and attackers use it: tokens in `?token=` and in `Authorization`, forged and expired
 * tokens, the API key, wrong guesses of it, webhooks fired. Every byte it wrote on stdout and stderr
 * is then searched for each secret (and each token's signature). The unit-level checks (redactUrl,
 * redactNatsUrl, the Redis password) live beside their modules; this is the whole process.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { Cluster } from './cluster/harness.js';
import { API_KEY, SECRET, token } from './helpers.js';
import { PostgresDatabase, postgresSkip } from './support/postgres.js';
import { WebhookReceiver } from './support/webhook-receiver.js';

const DB_PASSWORD = 'pg-pass-7f3a91c2e4';
const NATS_PASSWORD = 'nats-pass-c0ffee1234';
const WEBHOOK_SECRET = 'whsec-5b1d0e9a7c3f2e8d';
const GUESSES = ['guess-of-the-api-key-0001', 'guess-of-the-api-key-0002'];

/** Opens a socket and resolves with its first frame or its close. */
function open(url: string, headers: Record<string, string> = {}): Promise<{ first?: string; code?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('error', () => undefined);
    ws.once('message', (d: Buffer) => {
      resolve({ first: d.toString() });
      ws.close();
    });
    ws.once('close', (code) => resolve({ code }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ code: res.statusCode });
      ws.terminate();
    });
  });
}

describe('no secret in any log line of a node process at debug level', { skip: postgresSkip }, () => {
  const db = new PostgresDatabase();
  const receiver = new WebhookReceiver(WEBHOOK_SECRET);
  const cluster = new Cluster();
  let output = () => '';
  let base = '';
  const tokens: string[] = [];

  before(async () => {
    await db.create(false);
    const hookUrl = await receiver.start();
    const dbUrl = db.url.replace('postgres://postgres@', `postgres://postgres:${DB_PASSWORD}@`);
    const node = await cluster.start('secrets', {
      SWITCHBOARD_LOG_LEVEL: 'debug',
      SWITCHBOARD_HISTORY: 'postgres',
      DATABASE_URL: dbUrl,
      SWITCHBOARD_BROKER: 'nats',
      NATS_URL: `nats://sbuser:${NATS_PASSWORD}@127.0.0.1:4222`,
      SWITCHBOARD_WEBHOOK_URL: hookUrl,
      SWITCHBOARD_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SWITCHBOARD_INBOX: 'on',
    });
    output = () => node.stdout() + node.stderr();
    base = node.url;
  });
  after(async () => {
    await cluster.stop();
    await receiver.stop();
    await db.drop();
  });

  it('is used by clients, backends and attackers with those secrets', async () => {
    const ws = base.replace(/^http/, 'ws') + '/ws';
    const good = await token('alice', { groups: ['ops'] });
    const header = await token('bob');
    const expired = await new SignJWT({ sub: 'carol' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode(SECRET));
    const forged = await new SignJWT({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode('not-the-secret-but-long-enough-0123'));
    tokens.push(good, header, expired, forged);

    assert.match((await open(`${ws}?token=${good}`)).first ?? '', /"welcome"/);
    assert.match((await open(ws, { authorization: `Bearer ${header}` })).first ?? '', /"welcome"/);
    assert.equal((await open(`${ws}?token=${expired}`)).code, 4001);
    assert.equal((await open(`${ws}?token=${forged}&batch=1`)).code, 4001);

    const publish = await fetch(`${base}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'user:alice', topic: 't', data: 1 }),
    });
    assert.equal(publish.status, 200);
    for (const guess of GUESSES) {
      const res = await fetch(`${base}/v1/nodes`, { headers: { authorization: `Bearer ${guess}` } });
      assert.equal(res.status, 401);
    }
    const route = await fetch(`${base}/v1/route?token=${forged}`);
    assert.equal(route.status, 401);
    // The presence webhooks (alice and bob came and went), signed with the secret.
    const deadline = Date.now() + 15_000;
    while (receiver.of('user.offline').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(receiver.of('user.online').length >= 2, 'the webhooks were sent');
    assert.ok(output().includes('"level":20'), 'the node logged at debug level');
  });

  it('wrote none of the secrets, tokens, signatures or guessed keys', () => {
    const text = output();
    const secrets: Record<string, string> = {
      'JWT secret': SECRET,
      'API key': API_KEY,
      'webhook secret': WEBHOOK_SECRET,
      'database password': DB_PASSWORD,
      'NATS password': NATS_PASSWORD,
    };
    tokens.forEach((t, i) => {
      secrets[`token ${i}`] = t;
      secrets[`token ${i}'s signature`] = t.split('.')[2]!;
    });
    GUESSES.forEach((g, i) => (secrets[`guess ${i}`] = g));
    const leaked = Object.entries(secrets)
      .filter(([, value]) => text.includes(value))
      .map(([name]) => name);
    assert.deepEqual(leaked, [], `found in the node's output: ${leaked.join(', ')}`);
    // It did log what it saw of them: the upgrades (their URLs carried the tokens) and the refusals.
    for (const line of ['upgrade request', 'token rejected', 'http request'])
      assert.ok(text.includes(line), `the node logged "${line}" lines`);
  });
});
