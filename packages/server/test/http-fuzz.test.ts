/**
 * Fuzzing the HTTP API with raw bodies (issue 15, S1): 8,000 generated request bodies — valid
 * bodies with one byte changed, cut short, padded, re-encoded, nested deep, or random bytes — sent
 * to `POST /v1/publish` and `POST /v1/disconnect` of a real node. Each is accepted exactly when it
 * is UTF-8 JSON that the OpenAPI document's schema for the route accepts; everything else gets a
 * 400 `bad_frame` (413 `too_large` over the body limit) in the documented error shape, never a 500,
 * and the node keeps serving and logs no error. (openapi.test.ts sends 2,000 structured publish
 * bodies; together they make the 10,000.)
 *
 * Reproduce a failure with `FUZZ_SEED=<seed> node scripts/run-tests.mjs http-fuzz`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { Agent, request } from 'node:http';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { API_KEY, nodeFixture } from './helpers.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_203);
const RUNS = 8000;
const MAX_BODY = 4096;

const BASES: Record<string, unknown[]> = {
  '/v1/publish': [
    { channel: 'group:ops', topic: 'deploy', data: { version: '1.2.3', ok: true } },
    { channel: 'user:bob', topic: 't', data: [1, 2, 3], from: 'alice', key: 'k1' },
    { channel: 'broadcast', topic: 'news', data: null, from: null },
  ],
  '/v1/disconnect': [{ user: 'bob' }, { user: 'alice' }],
};

const ROUTES = Object.keys(BASES);

/** One way of spoiling (or not) a valid body's bytes. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('wrap' as const),
    prefix: fc.constantFrom('\uFEFF', ' ', '[', '{"a":', 'null', '\u0000', '\t\n'),
    suffix: fc.constantFrom('', ']', '}', ' ', 'x', ',{}'),
  }),
  fc.record({ kind: fc.constant('utf16' as const) }),
  fc.record({ kind: fc.constant('deep' as const), depth: fc.integer({ min: 1, max: 5000 }) }),
  fc.record({ kind: fc.constant('pad' as const), size: fc.integer({ min: 0, max: MAX_BODY * 2 }) }),
  fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({
    kind: fc.constant('field' as const),
    name: fc.constantFrom('channel', 'topic', 'data', 'from', 'key', 'user', '__proto__', 'constructor'),
    raw: fc.constantFrom('1e400', '-0', '"\\ud800"', '"\\u0000"', 'true', '[]', '{}', '"x"', '"' + 'y'.repeat(200) + '"', 'null'),
  }),
);

const fuzzCase = fc.record({ route: fc.constantFrom(...ROUTES), base: fc.nat(), mutation });
type FuzzCase = typeof fuzzCase extends fc.Arbitrary<infer T> ? T : never;

/** The bytes a case sends. */
function bodyOf(c: FuzzCase): Buffer {
  const bases = BASES[c.route]!;
  const text = JSON.stringify(bases[c.base % bases.length]);
  const bytes = Buffer.from(text);
  const m = c.mutation;
  const at = (n: number, len: number) => (len === 0 ? 0 : n % (len + 1));
  switch (m.kind) {
    case 'flip': {
      const copy = Buffer.from(bytes);
      copy[m.at % copy.length] = m.byte;
      return copy;
    }
    case 'delete': {
      const i = at(m.at, bytes.length);
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + m.count)]);
    }
    case 'insert': {
      const i = at(m.at, bytes.length);
      return Buffer.concat([bytes.subarray(0, i), Buffer.from(m.bytes), bytes.subarray(i)]);
    }
    case 'truncate':
      return bytes.subarray(0, m.at % bytes.length);
    case 'wrap':
      return Buffer.from(m.prefix + text + m.suffix);
    case 'utf16':
      return Buffer.from(text, 'utf16le');
    case 'deep':
      return Buffer.from(text.replace(/\}$/, `,"deep":${'['.repeat(m.depth)}${']'.repeat(m.depth)}}`));
    case 'pad':
      return Buffer.from(text.replace(/\}$/, `,"pad":"${'p'.repeat(m.size)}"}`));
    case 'random':
      return Buffer.from(m.bytes);
    case 'field':
      return Buffer.from(text.replace(/\}$/, `,${JSON.stringify(m.name)}:${m.raw}}`));
  }
}

describe('fuzzing the HTTP API with raw bodies', () => {
  const fixture = nodeFixture({ maxPayloadBytes: MAX_BODY, httpRateLimitPerSecond: 0 });
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const validators = new Map<string, (v: unknown) => boolean>();
  const stats = { sent: 0, accepted: 0, badFrame: 0, tooLarge: 0 };

  before(async () => {
    const doc = (await (await fetch(`${fixture.node.url}/v1/openapi.json`)).json()) as {
      paths: Record<string, { post?: { requestBody: { content: Record<string, { schema: unknown }> } } }>;
      components: unknown;
    };
    const ajv = new Ajv2020({ strict: false, allErrors: false });
    ajv.addSchema({ $id: 'doc', $defs: (doc.components as { schemas: Record<string, unknown> }).schemas }, 'doc');
    for (const route of ROUTES) {
      const schema = doc.paths[route]!.post!.requestBody.content['application/json']!.schema as { $ref: string };
      validators.set(route, ajv.compile({ $ref: schema.$ref.replace('#/components/schemas/', 'doc#/$defs/') }));
    }
  });
  after(() => agent.destroy());

  function post(path: string, body: Buffer): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${fixture.node.url}${path}`,
        {
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** What the document says of a body: accepted, or which error. */
  function documented(route: string, body: Buffer): 200 | 400 | 413 {
    if (body.length > MAX_BODY) return 413;
    if (!isUtf8(body)) return 400;
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      return 400;
    }
    return validators.get(route)!(value) ? 200 : 400;
  }

  it(`answers ${RUNS} generated bodies as the OpenAPI document says: accepted exactly when valid, else 400 or 413 (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (c) => {
        const body = bodyOf(c);
        const expected = documented(c.route, body);
        const res = await post(c.route, body);
        stats.sent++;
        const what = `${c.route} ${JSON.stringify(body.toString('latin1').slice(0, 200))} (${body.length} bytes)`;
        assert.equal(res.status, expected, `${what} → ${res.status} ${res.text.slice(0, 300)}`);
        if (expected === 200) return void stats.accepted++;
        const error = (JSON.parse(res.text) as { error: { code: string; message: string } }).error;
        assert.equal(error.code, expected === 413 ? 'too_large' : 'bad_frame', what);
        assert.ok(error.message.length > 0, `${what}: an error says what is wrong`);
        if (expected === 413) stats.tooLarge++;
        else stats.badFrame++;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    assert.equal(stats.sent, RUNS);
    // The generator reaches every outcome, so the property could have failed on each.
    assert.ok(stats.accepted > 0 && stats.badFrame > 0 && stats.tooLarge > 0, JSON.stringify(stats));
  });

  it('keeps serving and logs no error after the fuzzing', async () => {
    const health = await fetch(`${fixture.node.url}/readyz`);
    assert.equal(health.status, 200);
    const ok = await post('/v1/publish', Buffer.from(JSON.stringify({ channel: 'group:after', topic: 't', data: 1 })));
    assert.equal(ok.status, 200, ok.text);
    const errors = fixture.node.logs.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    assert.deepEqual(errors, [], 'a malformed body must never reach the error log');
  });
});
