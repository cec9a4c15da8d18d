/**
 * The HTTP limits of `/v1` (src/http/http-limits.ts): per client address, a token bucket of requests
 * (`httpRateLimitPerSecond`, `httpRateLimitBurst`, 0 = off) and always one of failed
 * authentications (`httpAuthFailuresPerSecond`, `httpAuthFailuresBurst`). Over either, 429
 * `rate_limited` with `Retry-After` in whole seconds, counted in `switchboard_http_rejected_total`
 * and logged once per address and episode. The probes are never limited. Other addresses are bound
 * with `localAddress` (127.0.0.x is all loopback on Linux). The 413 of the body limit is covered,
 * declared and streamed, by http-api.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { pino } from 'pino';
import { Gateway, gatewayOptions, resolveOptions } from '../src/index.js';
import { HttpLimits, type HttpRejectReason } from '../src/http/http-limits.js';
import { MemoryRegistry } from '../src/registry/memory-registry.js';
import { API_KEY, SECRET, sleep, startNode, type Frame, type TestNode } from './helpers.js';
import { logSink } from './support/log-sink.js';

const WRONG_KEY = 'wrong-key-guess-0123456789';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: Frame;
}

/** One request on a fresh connection from `from` (a loopback address), with `key` unless null. */
function call(
  base: string,
  path: string,
  opts: { key?: string | null; from?: string; method?: string; body?: string } = {},
): Promise<Answer> {
  const { key = API_KEY, from = '127.0.0.1', method = 'GET', body } = opts;
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method, headers, localAddress: from, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: Frame;
        try {
          parsed = JSON.parse(text) as Frame;
        } catch {
          parsed = { text };
        }
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `n` requests one after the other; their answers in order. */
async function calls(n: number, base: string, path: string, opts: Parameters<typeof call>[2] = {}): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < n; i++) out.push(await call(base, path, opts));
  return out;
}

/** Asserts a 429 `rate_limited` answer in the error body shape, with a whole-seconds `Retry-After`. */
function assertLimited(answer: Answer, message: RegExp): void {
  assert.equal(answer.status, 429, JSON.stringify(answer.body));
  assert.equal(answer.body.error?.code, 'rate_limited');
  assert.match(answer.body.error.message, message);
  assert.match(answer.retryAfter ?? '', /^[1-9]\d*$/, `Retry-After ${answer.retryAfter}`);
}

/** The value of one labelled series in Prometheus text. */
async function metric(base: string, name: string, label: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  assert.ok(line, `${name}{${label}} in /metrics`);
  return Number(line.split(' ').pop());
}

/** The log lines whose `msg` matches. */
function logged(logs: string[], msg: RegExp): Frame[] {
  return logs.map((l) => JSON.parse(l) as Frame).filter((l) => typeof l.msg === 'string' && msg.test(l.msg));
}

describe('HTTP rate limit per client address', () => {
  let node: TestNode;
  // 10 at once, then one every 500 ms: a burst of 15 sees exactly 10 answered.
  before(async () => (node = await startNode({ httpRateLimitPerSecond: 2, httpRateLimitBurst: 10 })));
  after(() => node.stop());

  it('answers exactly the burst, then 429 rate_limited with Retry-After; another address is unaffected', async () => {
    const answers = await calls(15, node.url, '/v1/nodes');
    assert.deepEqual(
      answers.map((a) => a.status),
      [...Array<number>(10).fill(200), ...Array<number>(5).fill(429)],
    );
    for (const answer of answers.slice(10)) assertLimited(answer, /over 2 requests\/s \(bursts of 10\) from this address: retry after 1 s/);
    assert.equal(answers[10]!.retryAfter, '1', 'half a second to the next token rounds up to 1 s');
    // Body or not, a limited request is not handled: a publish is refused before its body is read.
    const publish = await call(node.url, '/v1/publish', { method: 'POST', body: JSON.stringify({ channel: 'group:x', topic: 't' }) });
    assertLimited(publish, /from this address/);
    const other = await calls(3, node.url, '/v1/nodes', { from: '127.0.0.2' });
    assert.deepEqual(
      other.map((a) => a.status),
      [200, 200, 200],
    );
  });

  it('never limits /healthz, /readyz and /metrics', async () => {
    assert.equal((await call(node.url, '/v1/nodes')).status, 429, 'the address is still over its limit');
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const answers = await calls(20, node.url, path, { key: null });
      assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]), path);
    }
  });

  it('counts every 429 in switchboard_http_rejected_total and warns once for the episode, naming the node, never the key', async () => {
    assert.equal(await metric(node.url, 'switchboard_http_rejected_total', 'reason="rate_limited"'), 7);
    assert.equal(await metric(node.url, 'switchboard_http_rejected_total', 'reason="auth_failures"'), 0);
    const warnings = logged(node.logs, /HTTP rate limit reached/);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.deepEqual([warnings[0]!.level, warnings[0]!.node, warnings[0]!.address], [40, 'n-test', '127.0.0.1']);
    assert.ok(!node.logs.join('\n').includes(API_KEY), 'the API key is never logged');
  });

  it('answers again once the bucket refilled', async () => {
    await sleep(1100);
    const again = await call(node.url, '/v1/nodes');
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });
});

describe('HTTP rate limit off', () => {
  for (const off of [
    { httpRateLimitPerSecond: 0, httpRateLimitBurst: 1 },
    { httpRateLimitPerSecond: 1, httpRateLimitBurst: 0 },
  ]) {
    it(`lets every request through with ${JSON.stringify(off)}`, async () => {
      const node = await startNode(off);
      try {
        const answers = await Promise.all(Array.from({ length: 50 }, () => call(node.url, '/v1/nodes')));
        assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
        assert.equal(await metric(node.url, 'switchboard_http_rejected_total', 'reason="rate_limited"'), 0);
      } finally {
        await node.stop();
      }
    });
  }
});

describe('failed authentications per client address (defaults)', () => {
  let node: TestNode;
  before(async () => (node = await startNode()));
  after(() => node.stop());

  it('answers 401 to the first 30 wrong or missing keys, then 429 to that address, even with the right key', async () => {
    const burst = node.node.options.httpAuthFailuresBurst;
    assert.equal(burst, 30);
    const guesses = [
      ...(await calls(burst / 2, node.url, '/v1/nodes', { key: WRONG_KEY })),
      ...(await calls(burst / 2, node.url, '/v1/publish', { key: null, method: 'POST', body: '{}' })),
    ];
    assert.deepEqual(new Set(guesses.map((a) => a.status)), new Set([401]));
    assertLimited(await call(node.url, '/v1/nodes', { key: WRONG_KEY }), /too many failed authentications from this address/);
    assertLimited(await call(node.url, '/v1/nodes'), /too many failed authentications/);
    assertLimited(await call(node.url, '/v1/route?user=alice', { key: WRONG_KEY }), /too many failed authentications/);
  });

  it('keeps serving the right key from another address, and the probes to the blocked one', async () => {
    assert.equal((await call(node.url, '/v1/nodes')).status, 429);
    assert.equal((await call(node.url, '/v1/nodes', { from: '127.0.0.2' })).status, 200);
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.equal((await call(node.url, path, { key: null })).status, 200, path);
  });

  it('lets one more guess through per second (httpAuthFailuresPerSecond), then blocks again', async () => {
    await sleep(1100);
    assert.equal((await call(node.url, '/v1/nodes', { key: WRONG_KEY })).status, 401);
    assertLimited(await call(node.url, '/v1/nodes', { key: WRONG_KEY }), /too many failed authentications/);
  });

  it('counts the 429s as auth_failures and warns once, without the keys', async () => {
    assert.equal(await metric(node.url, 'switchboard_http_rejected_total', 'reason="auth_failures"'), 5);
    const warnings = logged(node.logs, /too many failed HTTP authentications/);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.deepEqual([warnings[0]!.node, warnings[0]!.address, warnings[0]!.reason], ['n-test', '127.0.0.1', 'auth_failures']);
    const all = node.logs.join('\n');
    assert.ok(!all.includes(API_KEY) && !all.includes(WRONG_KEY), 'neither the key nor a guess is logged');
  });

  it('counts bad client tokens on GET /v1/route too', async () => {
    const from = '127.0.0.3';
    const answers = await calls(30, node.url, '/v1/route', { key: 'not-a-token', from });
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([401]));
    assertLimited(await call(node.url, '/v1/route', { key: 'not-a-token', from }), /too many failed authentications/);
  });
});

describe('HTTP limits on the gateway', () => {
  let gateway: Gateway;
  const { lines: logs, stream } = logSink();
  before(async () => {
    const options = resolveOptions({
      port: 0,
      jwtSecret: SECRET,
      apiKey: API_KEY,
      nodeId: 'gw-limits',
      logLevel: 'info',
      httpRateLimitPerSecond: 1,
      httpRateLimitBurst: 40,
      httpAuthFailuresBurst: 3,
    });
    // No node behind it: the gateway answers a wrong key, /v1/route and the document itself.
    gateway = new Gateway(gatewayOptions(options), { registry: new MemoryRegistry(), logDestination: stream });
    await gateway.start();
  });
  after(() => gateway.stop());

  it('refuses a wrong key itself and blocks the guessing address, not the others', async () => {
    const guesses = await calls(3, gateway.url, '/v1/nodes', { key: WRONG_KEY });
    assert.deepEqual(
      guesses.map((a) => [a.status, a.body.error?.code]),
      Array(3).fill([401, 'unauthorized']),
    );
    assertLimited(await call(gateway.url, '/v1/nodes', { key: WRONG_KEY }), /too many failed authentications/);
    assertLimited(await call(gateway.url, '/v1/route?user=alice'), /too many failed authentications/);
    assert.equal((await call(gateway.url, '/v1/route?user=alice', { from: '127.0.0.2' })).status, 503, 'past the limits: no node is ready');
    assert.equal((await call(gateway.url, '/readyz', { key: null })).status, 503, 'probes answered, not limited');
    assert.equal(await metric(gateway.url, 'switchboard_gateway_http_rejected_total', 'reason="auth_failures"'), 2);
    assert.equal(logged(logs, /too many failed HTTP authentications/)[0]?.node, 'gw-limits');
  });

  it('limits the requests of an address', async () => {
    const answers = await calls(45, gateway.url, '/v1/openapi.json', { from: '127.0.0.4' });
    assert.equal(answers.filter((a) => a.status === 200).length, 40);
    assertLimited(answers[44]!, /over 1 requests\/s \(bursts of 40\)/);
    assert.equal(await metric(gateway.url, 'switchboard_gateway_http_rejected_total', 'reason="rate_limited"'), 5);
  });
});

/** A request from `address` and a response that records what was written. */
function fakeCall(address: string): { req: IncomingMessage; res: ServerResponse; status: () => number } {
  let status = 0;
  const res = {
    statusCode: 200,
    writeHead(code: number) {
      status = code;
      this.statusCode = code;
      return this;
    },
    end() {
      return this;
    },
  };
  return { req: { socket: { remoteAddress: address } } as IncomingMessage, res: res as unknown as ServerResponse, status: () => status };
}

describe('HttpLimits memory', () => {
  const quiet = pino({ level: 'silent' });
  const options = { httpRateLimitPerSecond: 10, httpRateLimitBurst: 5, httpAuthFailuresPerSecond: 1, httpAuthFailuresBurst: 2 };

  it('forgets an address once its buckets are full again, and logs its next episode again', () => {
    let t = 1_000_000;
    const rejected: HttpRejectReason[] = [];
    const { lines, stream } = logSink();
    const limits = new HttpLimits(options, { log: pino(stream), rejected: (r) => rejected.push(r), now: () => t });
    try {
      for (let i = 0; i < 6; i++) limits.admit(fakeCall('10.0.0.1').req, fakeCall('10.0.0.1').res);
      limits.authFailed(fakeCall('10.0.0.1').req);
      assert.deepEqual(rejected, ['rate_limited']);
      t += 499;
      limits.sweep();
      assert.equal(limits.size, 1, 'still refilling');
      t += 1; // 500 ms: 5 requests at 10/s, but the failures bucket needs a second
      limits.sweep();
      assert.equal(limits.size, 1);
      t += 500;
      limits.sweep();
      assert.equal(limits.size, 0, 'both buckets full again: nothing kept');
      for (let i = 0; i < 6; i++) limits.admit(fakeCall('10.0.0.1').req, fakeCall('10.0.0.1').res);
      assert.equal(logged(lines, /HTTP rate limit reached/).length, 2, 'one warning per episode');
    } finally {
      limits.close();
    }
  });

  it('tracks at most maxAddresses, forgetting the one tracked longest', () => {
    const limits = new HttpLimits(options, { log: quiet, rejected: () => undefined, maxAddresses: 100 });
    try {
      for (let i = 0; i < 1000; i++) limits.admit(fakeCall(`10.1.${i >> 8}.${i & 255}`).req, fakeCall('x').res);
      assert.equal(limits.size, 100);
      // An address used up, then pushed out by 100 others, starts again with a full bucket.
      const first = fakeCall('10.2.0.1');
      for (let i = 0; i < 5; i++) assert.ok(limits.admit(first.req, first.res));
      assert.equal(limits.admit(first.req, first.res), false);
      for (let i = 0; i < 100; i++) limits.admit(fakeCall(`10.3.0.${i}`).req, fakeCall('x').res);
      assert.ok(limits.admit(first.req, first.res));
    } finally {
      limits.close();
      limits.close();
    }
  });

  it('tracks nothing with the request limit off until an address fails authentication', () => {
    const limits = new HttpLimits({ ...options, httpRateLimitPerSecond: 0 }, { log: quiet, rejected: () => undefined });
    try {
      for (let i = 0; i < 100; i++) assert.ok(limits.admit(fakeCall(`10.4.0.${i}`).req, fakeCall('x').res));
      assert.equal(limits.size, 0);
      const guesser = fakeCall('10.5.0.1');
      limits.authFailed(guesser.req);
      limits.authFailed(guesser.req);
      assert.equal(limits.size, 1);
      assert.equal(limits.admit(guesser.req, guesser.res), false);
      assert.equal(guesser.status(), 429);
    } finally {
      limits.close();
    }
  });
});
