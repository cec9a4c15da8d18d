/**
 * `GET /v1/openapi.json`: a valid OpenAPI 3.1 document (checked by a real validator against the
 * specification's own schema), covering every route of PROTOCOL.md, and true to the server: every
 * answer of a running node, errors included, matches the document's schema for its route and status
 * (Ajv, JSON Schema 2020-12), and generated publish bodies are accepted by the server exactly when
 * the document says they are. The gateway answers the same document itself.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { Gateway, gatewayOptions, resolveOptions } from '../src/index.js';
import { MemoryRegistry } from '../src/registry/memory-registry.js';
import { API_KEY, SECRET, api, nodeFixture, type Frame } from './helpers.js';

interface Doc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  components: { schemas: Record<string, unknown> };
}

/** The document's path template that `path` (without query) matches. */
function template(doc: Doc, path: string): string | undefined {
  const parts = path.split('/');
  return Object.keys(doc.paths).find((t) => {
    const tparts = t.split('/');
    return tparts.length === parts.length && tparts.every((p, i) => p.startsWith('{') || p === parts[i]);
  });
}

describe('OpenAPI document', () => {
  const fixture = nodeFixture({ inbox: 'on', httpRateLimitPerSecond: 0 });
  let doc: Doc;
  let ajv: Ajv2020;

  before(async () => {
    const res = await fetch(`${fixture.node.url}/v1/openapi.json`);
    assert.equal(res.status, 200, 'open without the API key');
    doc = (await res.json()) as Doc;
    ajv = new Ajv2020({ strict: true, allErrors: true });
    // The components as one schema's `$defs`, for Ajv to resolve the document's references in.
    const defs = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('#/components/schemas/', 'doc#/$defs/')) as object;
    ajv.addSchema({ $id: 'doc', $defs: defs });
  });

  /** Calls the node and checks the answer against the document; returns it. */
  async function call(
    method: string,
    path: string,
    body?: unknown,
    key: string | null = API_KEY,
  ): Promise<{ status: number; body: Frame }> {
    const res = await api(fixture.node, method, path, body, key);
    const url = new URL(path, 'http://x');
    const route = template(doc, url.pathname);
    assert.ok(route, `${url.pathname} is in the document`);
    const operation = doc.paths[route]![method.toLowerCase()];
    assert.ok(operation, `${method} ${route} is in the document`);
    const response = operation.responses[String(res.status)];
    assert.ok(response, `${method} ${route} documents status ${res.status} (${JSON.stringify(res.body)})`);
    const schema = response.content?.['application/json']?.schema;
    assert.ok(schema, `${method} ${route} ${res.status} has a JSON schema`);
    const validate = ajv.compile({ $ref: (schema as { $ref: string }).$ref.replace('#/components/schemas/', 'doc#/$defs/') });
    assert.ok(validate(res.body), `${method} ${path} → ${res.status} ${JSON.stringify(res.body)}: ${ajv.errorsText(validate.errors)}`);
    return res;
  }

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0]);
    assert.equal(validator.version, '3.1');
    assert.deepEqual(result.errors, undefined);
    assert.equal(result.valid, true);
  });

  it('covers every route of PROTOCOL.md, the inbox included', () => {
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    for (const route of [
      'POST /v1/publish',
      'GET /v1/presence/{channel}',
      'GET /v1/users/{user}',
      'GET /v1/history/{channel}',
      'POST /v1/disconnect',
      'GET /v1/nodes',
      'GET /v1/route',
      'GET /v1/inbox/{user}',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      'GET /ws',
    ]) {
      assert.ok(routes.includes(route), `${route} is documented`);
    }
  });

  it("matches every answer of a running node, successes and errors, to its route's schema", async () => {
    const alice = await fixture.connect('alice', { groups: ['ops'] });
    await call('POST', '/v1/publish', { channel: 'group:ops', topic: 'alert', data: { level: 2 }, from: 'ops-bot' });
    await call('POST', '/v1/publish', { channel: 'user:alice', topic: 'hi', key: 'k-1' });
    const repeat = await call('POST', '/v1/publish', { channel: 'user:alice', topic: 'hi', key: 'k-1' });
    assert.equal(repeat.body.duplicate, true);
    assert.equal((await call('POST', '/v1/publish', { channel: 'nowhere', topic: 'x' })).status, 400);
    assert.equal((await call('POST', '/v1/publish', { channel: 'group:ops', topic: '$x' })).status, 400);
    assert.equal((await call('POST', '/v1/publish', '{not json')).status, 400);
    assert.equal((await call('POST', '/v1/publish', { channel: 'group:ops', topic: 'x', data: 'y'.repeat(70_000) })).status, 413);
    assert.equal((await call('POST', '/v1/publish', { channel: 'group:ops', topic: 'x' }, 'wrong')).status, 401);
    const presence = await call('GET', '/v1/presence/group:ops');
    assert.deepEqual(
      presence.body.users.map((u: Frame) => u.user),
      ['alice'],
    );
    assert.equal((await call('GET', '/v1/presence/broadcast')).status, 400);
    assert.equal((await call('GET', '/v1/users/alice')).body.online, true);
    assert.equal((await call('GET', '/v1/users/a%20b')).status, 400);
    assert.deepEqual((await call('GET', '/v1/users')).body, { users: ['alice'], more: false });
    assert.equal((await call('GET', '/v1/users?limit=0')).status, 400);
    const history = await call('GET', '/v1/history/group:ops?since=0&limit=10');
    assert.equal(history.body.messages.length, 1);
    assert.equal((await call('GET', '/v1/history/group:ops?since=-1')).status, 400);
    const inbox = await call('GET', '/v1/inbox/alice');
    assert.equal(inbox.body.unacked, 1);
    const nodes = await call('GET', '/v1/nodes');
    assert.equal(nodes.body.nodes[0].connections, 1);
    assert.equal(nodes.body.nodes[0].share, 1, 'one node owns the whole ring');
    assert.equal((await call('GET', '/v1/route?user=alice')).body.node, fixture.node.node.nodeId);
    assert.equal((await call('GET', '/v1/route')).status, 400);
    assert.equal((await call('POST', '/v1/disconnect', { user: 'alice' })).body.sessions, 1);
    assert.equal((await call('POST', '/v1/disconnect', {})).status, 400);
    await alice.closed;
    assert.equal((await call('GET', '/healthz')).status, 200);
    assert.equal((await call('GET', '/readyz')).status, 200);
    assert.equal((await call('GET', '/ws')).status, 426);
  });

  it('says which publish bodies the server accepts, for 2,000 generated bodies', async () => {
    const validate = ajv.compile({ $ref: 'doc#/$defs/PublishRequest' });
    const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
    const body = fc.record(
      {
        channel: maybe(
          fc.oneof(fc.constantFrom('group:ops', 'user:bob', 'broadcast', 'group:', 'user:a b', 'group:a:b', 'topic'), fc.string()),
        ),
        topic: maybe(fc.oneof(fc.constantFrom('t', '', '$receipt', 'x'.repeat(128), 'x'.repeat(129)), fc.string(), fc.integer())),
        data: maybe(fc.jsonValue({ maxDepth: 3 })),
        from: maybe(fc.oneof(fc.constant(null), fc.constantFrom('bob', 'a b', 'x:y', ''), fc.integer())),
        key: maybe(fc.oneof(fc.constantFrom('k', '', 'k'.repeat(129)), fc.string(), fc.boolean())),
        extra: maybe(fc.string()),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(body, async (input) => {
        const clean = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
        const res = await api(fixture.node, 'POST', '/v1/publish', clean);
        const documented = validate(clean);
        assert.equal(res.status === 200, documented, `${JSON.stringify(clean)} → ${res.status} ${JSON.stringify(res.body)}`);
        if (!documented) assert.equal(res.body.error.code, 'bad_frame');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('OpenAPI document on the gateway', () => {
  let gateway: Gateway;
  const node = nodeFixture();
  before(async () => {
    const options = resolveOptions({ port: 0, jwtSecret: SECRET, apiKey: API_KEY, nodeId: 'gw-openapi', logLevel: 'silent' });
    // No node live: the gateway answers the document itself.
    gateway = new Gateway(gatewayOptions(options), { registry: new MemoryRegistry() });
    await gateway.start();
  });
  after(() => gateway.stop());

  it('is the nodes’ document, answered with no node behind it', async () => {
    const res = await fetch(`${gateway.url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    const fromNode = await (await fetch(`${node.node.url}/v1/openapi.json`)).json();
    assert.deepEqual(await res.json(), fromNode);
  });
});
