/**
 * resolveOptions: documented defaults and validation messages that say what to fix (option, flag and
 * env name). docs/config.md is checked by docs.test.ts, which regenerates it from OPTION_SPECS.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OPTION_SPECS, OptionsError, flagOf, resolveOptions } from '../src/index.js';

const SECRET = 'options-test-secret-0123456789abcdef';
const PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexampleexampleexampleexampleexample
-----END PUBLIC KEY-----`;

/** One invalid value per option; a new option without an entry here fails the coverage test. */
const INVALID: Record<keyof typeof OPTION_SPECS, unknown> = {
  port: 70000,
  host: 42,
  nodeId: 'has space',
  publicUrl: 'not a url',
  wsPath: 'ws',
  jwtSecret: 'too-short',
  jwtPublicKey: 42,
  jwtAlgorithm: 'none',
  requireExp: 'maybe',
  apiKey: 'short',
  engine: 'postgres',
  broker: 'carrier-pigeon',
  routing: 'random',
  moveWindowMs: -1,
  channelLingerMs: -5,
  redisUrl: 'http://127.0.0.1:6379',
  redisCluster: 'yes',
  amqpUrl: 'http://127.0.0.1:5672',
  natsUrl: 'redis://127.0.0.1:4222',
  redisPrefix: 'has space',
  presenceTtlMs: 10,
  allowedOrigins: 'https://example.com/path',
  maxPayloadBytes: 12,
  rateLimitPerSecond: 0,
  rateLimitBurst: 0,
  rateLimitMaxRejected: 0,
  httpRateLimitPerSecond: -1,
  httpRateLimitBurst: 2.5,
  httpAuthFailuresPerSecond: 0,
  httpAuthFailuresBurst: 0,
  maxSubscriptions: 2,
  maxConnectionsPerUser: 0,
  maxConnections: 0,
  maxOutboundBytes: 100,
  heartbeatIntervalMs: 'abc',
  handshakeTimeoutMs: 50,
  drainTimeoutMs: -1,
  drainSpreadMs: -1,
  perMessageDeflate: 'sometimes',
  historySize: -1,
  historyTtlMs: 10,
  historyMetaTtlMs: 10,
  history: 'sqlite',
  databaseUrl: 'mysql://127.0.0.1/db',
  inbox: 'yes',
  inboxRetentionMs: 10,
  inboxSize: 0,
  webhookUrl: 'ftp://example.com/hook',
  webhookSecret: 'short',
  unackedAfterMs: 10,
  webhookTimeoutMs: 10,
  webhookQueueSize: 0,
  maxRecoveryMessages: 0,
  idempotencyWindowMs: 10,
  gatewayPolicy: 'random',
  gatewayProbeIntervalMs: 10,
  gatewayWorkers: 0,
  acceptPerTurn: 65,
  tlsCert: 42,
  tlsKey: 42,
  logLevel: 'loud',
};

/** Asserts that `fn` throws an OptionsError whose message contains every one of `parts`. */
function assertOptionsError(fn: () => unknown, parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OptionsError, `expected OptionsError, got ${String(err)}`);
    for (const part of parts) assert.ok(err.message.includes(part), `message "${err.message}" does not name ${part}`);
    return true;
  });
}

describe('resolveOptions defaults', () => {
  it('uses the documented defaults', () => {
    const o = resolveOptions();
    assert.equal(o.port, 8080);
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.wsPath, '/ws');
    assert.equal(o.maxPayloadBytes, 65_536);
    assert.equal(o.rateLimitPerSecond, 100);
    assert.equal(o.rateLimitBurst, 200);
    assert.equal(o.httpRateLimitPerSecond, 2000);
    assert.equal(o.httpRateLimitBurst, 4000);
    assert.equal(o.httpAuthFailuresPerSecond, 1);
    assert.equal(o.httpAuthFailuresBurst, 30);
    assert.equal(o.heartbeatIntervalMs, 25_000);
    assert.equal(o.maxOutboundBytes, 1_048_576);
    assert.equal(o.drainTimeoutMs, 10_000);
    assert.equal(o.perMessageDeflate, false);
    assert.equal(o.requireExp, true);
    assert.deepEqual(o.allowedOrigins, []);
    assert.equal(o.jwtSecret, undefined);
    assert.equal(o.apiKey, undefined);
  });

  it('makes up a node id when none is given', () => {
    const a = resolveOptions();
    const b = resolveOptions();
    assert.match(a.nodeId, /^n-[a-z0-9]+$/);
    assert.notEqual(a.nodeId, b.nodeId);
    assert.equal(resolveOptions({ nodeId: 'n7' }).nodeId, 'n7');
  });

  it('treats an empty string as unset (an empty env var keeps the default)', () => {
    assert.equal(resolveOptions({ maxPayloadBytes: '' }).maxPayloadBytes, 65_536);
  });

  it('returns a frozen object', () => {
    const o = resolveOptions({ port: 1234 });
    assert.ok(Object.isFrozen(o));
    assert.throws(() => {
      (o as { port: number }).port = 1;
    }, TypeError);
    assert.equal(o.port, 1234);
  });

  it('coerces strings from env and flags to numbers and booleans', () => {
    const o = resolveOptions({ port: '9001', heartbeatIntervalMs: '500', perMessageDeflate: 'true', requireExp: 'false' });
    assert.equal(o.port, 9001);
    assert.equal(o.heartbeatIntervalMs, 500);
    assert.equal(o.perMessageDeflate, true);
    assert.equal(o.requireExp, false);
  });

  it('reads allowedOrigins from a comma-separated string, trimming blanks', () => {
    const o = resolveOptions({ allowedOrigins: 'https://a.example.com, http://localhost:3000,,' });
    assert.deepEqual(o.allowedOrigins, ['https://a.example.com', 'http://localhost:3000']);
  });

  it('accepts allowedOrigins as an array (config file)', () => {
    assert.deepEqual(resolveOptions({ allowedOrigins: ['https://a.example.com'] }).allowedOrigins, ['https://a.example.com']);
  });
});

describe('resolveOptions validation', () => {
  it('has an invalid-value case for every option', () => {
    assert.deepEqual(Object.keys(INVALID).sort(), Object.keys(OPTION_SPECS).sort());
  });

  for (const [key, value] of Object.entries(INVALID) as [keyof typeof OPTION_SPECS, unknown][]) {
    it(`rejects ${key}=${JSON.stringify(value)} naming ${key}, ${flagOf(key)} and ${OPTION_SPECS[key].env}`, () => {
      assertOptionsError(() => resolveOptions({ [key]: value }), [key, flagOf(key), OPTION_SPECS[key].env]);
    });
  }

  it('builds flags from option names', () => {
    assert.equal(flagOf('heartbeatIntervalMs'), '--heartbeat-interval-ms');
    assert.equal(flagOf('port'), '--port');
    assert.equal(flagOf('jwtPublicKey'), '--jwt-public-key');
  });

  it('rejects a JWT secret and a public key together, naming both env names', () => {
    assertOptionsError(
      () => resolveOptions({ jwtSecret: SECRET, jwtPublicKey: PUBLIC_KEY }),
      ['SWITCHBOARD_JWT_SECRET', 'SWITCHBOARD_JWT_PUBLIC_KEY'],
    );
  });

  it('rejects an algorithm that does not fit the key material', () => {
    assertOptionsError(() => resolveOptions({ jwtAlgorithm: 'HS256', jwtPublicKey: PUBLIC_KEY }), ['SWITCHBOARD_JWT_ALGORITHM']);
    assertOptionsError(() => resolveOptions({ jwtAlgorithm: 'RS256', jwtSecret: SECRET }), ['SWITCHBOARD_JWT_ALGORITHM']);
  });

  it('rejects a TLS certificate without its key and a key without its certificate', () => {
    assertOptionsError(() => resolveOptions({ tlsCert: '/etc/ssl/cert.pem' }), ['SWITCHBOARD_TLS_CERT', 'SWITCHBOARD_TLS_KEY']);
    assertOptionsError(() => resolveOptions({ tlsKey: '/etc/ssl/key.pem' }), ['SWITCHBOARD_TLS_CERT', 'SWITCHBOARD_TLS_KEY']);
  });

  it('takes every broker of this build, defaults it to the engine, and refuses a cluster broker without a shared history', () => {
    assert.equal(resolveOptions({}).broker, 'memory');
    assert.equal(resolveOptions({ engine: 'redis' }).broker, 'redis');
    for (const broker of ['redis', 'rabbitmq', 'nats'] as const) {
      assert.equal(resolveOptions({ engine: 'redis', broker }).broker, broker);
      assertOptionsError(() => resolveOptions({ broker }), ['SWITCHBOARD_BROKER', `is ${broker}`, 'SWITCHBOARD_ENGINE=redis']);
    }
  });

  it('takes a Redis Cluster for engine redis, and refuses it without Redis or with hash routing on its pub/sub', () => {
    assert.equal(resolveOptions({}).redisCluster, 'off');
    assert.equal(resolveOptions({ engine: 'redis', redisCluster: 'on' }).redisCluster, 'on');
    assert.equal(resolveOptions({ engine: 'redis', redisCluster: 'on', routing: 'broadcast' }).routing, 'broadcast');
    assert.equal(resolveOptions({ engine: 'redis', redisCluster: 'on', broker: 'nats', routing: 'hash' }).routing, 'hash');
    assertOptionsError(() => resolveOptions({ redisCluster: 'on' }), ['SWITCHBOARD_REDIS_CLUSTER', 'SWITCHBOARD_ENGINE=redis']);
    assertOptionsError(
      () => resolveOptions({ engine: 'redis', redisCluster: 'on', routing: 'hash' }),
      ['SWITCHBOARD_ROUTING', 'hash', 'SWITCHBOARD_REDIS_CLUSTER=on', 'interest or broadcast'],
    );
  });

  it('rejects a burst smaller than a tenth of the rate', () => {
    assertOptionsError(
      () => resolveOptions({ rateLimitPerSecond: 1000, rateLimitBurst: 10 }),
      ['rateLimitBurst', 'SWITCHBOARD_RATE_LIMIT_BURST'],
    );
    assert.equal(resolveOptions({ rateLimitPerSecond: 1000, rateLimitBurst: 100 }).rateLimitBurst, 100);
  });

  it('never puts a rejected secret into the error message', () => {
    const secret = 'short-but-secret';
    assert.throws(
      () => resolveOptions({ jwtSecret: secret }),
      (err: Error) => !err.message.includes(secret),
    );
  });
});
