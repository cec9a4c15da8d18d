/**
 * The broker contract (contracts/broker-contract.ts) on NATS — the cluster protocol over
 * NatsTransport — with every routing strategy, on a private nats-server that the outage cases kill
 * and start again. Then what only NATS shows: its subjects and their escaping, failing fast while
 * the server is away (and on a server that stops answering), the start-up connect step, credentials
 * kept out of messages, one flush per event-loop turn, close.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { LinkState } from '../src/broker/broker.js';
import { ClusterBroker } from '../src/broker/cluster-broker.js';
import { BrokerUnreachableError } from '../src/broker/broker-unreachable.js';
import {
  NATS_CONNECT_TIMEOUT_MS,
  NatsTransport,
  fromSubjectToken,
  redactNatsUrl,
  subjectToken,
  type NatsTransportOptions,
} from '../src/broker/nats-transport.js';
import { Router } from '../src/broker/routing.js';
import type { Destination, TransportHandler } from '../src/broker/transport.js';
import { SwitchboardError } from '../src/errors.js';
import { brokerContract } from './contracts/broker-contract.js';
import { eventually } from './contracts/registry-contract.js';
import { natsServerWith, natsSkip } from './support/nats.js';
import { PrivateServer, freeLoopbackPort } from './support/servers.js';

// A prefix per transport, so that nothing in flight from an earlier test can reach a later one.
let prefixes = 0;
const nextPrefix = () => `sbtest.p${process.pid}x${++prefixes}`;
const quick: NatsTransportOptions = { reconnectWaitMs: 100 };

describe('NATS broker contract', { skip: natsSkip }, () => {
  let server: PrivateServer | undefined;
  after(() => server?.stop());
  brokerContract(async ({ routing, ring }) => {
    server ??= await PrivateServer.nats();
    const s = server;
    const prefix = nextPrefix();
    const make = (node: string) =>
      new ClusterBroker({
        transport: new NatsTransport({ ...quick, url: `nats://127.0.0.1:${s.port}`, prefix }),
        router: new Router(routing, node, ring),
        ring,
      });
    const a = make('node-a');
    const b = make('node-b');
    return {
      a,
      b,
      cleanup: async () => void (await Promise.allSettled([a.close(), b.close()])),
      outage: { down: () => s.stop(), up: () => s.start() },
    };
  });
});

/** What a transport pushed into its handler. */
class Recorder implements TransportHandler {
  readonly payloads: Buffer[] = [];
  readonly links: LinkState[] = [];
  readonly errors: { err: unknown; what: string }[] = [];
  bytes(payload: Buffer): void {
    this.payloads.push(payload);
  }
  link(state: LinkState): void {
    this.links.push(state);
  }
  error(err: unknown, what: string): void {
    this.errors.push({ err, what });
  }
  get texts(): string[] {
    return this.payloads.map((p) => p.toString());
  }
}

const rejectsWithin = async (ms: number, op: () => Promise<unknown>, check: (err: unknown) => boolean, what: string): Promise<unknown> => {
  const t0 = Date.now();
  let caught: unknown;
  await assert.rejects(op(), (err) => ((caught = err), check(err)), what);
  assert.ok(Date.now() - t0 < ms, `${what}: rejected after ${Date.now() - t0} ms, not within ${ms} ms`);
  return caught;
};
const unavailable = (err: unknown) => err instanceof SwitchboardError && err.errorName === 'ERR_UNAVAILABLE' && err.code === 'unavailable';

describe('NATS transport', { skip: natsSkip }, () => {
  let server: PrivateServer;
  let raw: NatsConnection;
  const open: NatsTransport[] = [];
  const started = async (options: NatsTransportOptions = {}): Promise<{ t: NatsTransport; got: Recorder }> => {
    const t = new NatsTransport({ ...quick, url: `nats://127.0.0.1:${server.port}`, prefix: nextPrefix(), ...options });
    open.push(t);
    const got = new Recorder();
    await t.start(got);
    return { t, got };
  };
  /** Everything published under `prefix`, as a raw client sees it. */
  const watchPrefix = async (prefix: string): Promise<Msg[]> => {
    const seen: Msg[] = [];
    raw.subscribe(`${prefix}.>`, { callback: (_err, msg) => void seen.push(msg) });
    await raw.flush();
    return seen;
  };

  before(async () => {
    server = await PrivateServer.nats();
    raw = await connect({ servers: `127.0.0.1:${server.port}` });
  });
  after(async () => {
    await Promise.allSettled(open.map((t) => t.close()));
    await raw?.close();
    await server?.stop();
  });

  it('publishes to <prefix>.ch.<token>, <prefix>.node.<token> and <prefix>.all, and receives from them', async () => {
    const { t, got } = await started();
    const seen = await watchPrefix(t.prefix);
    const sends: [Destination[], string][] = [
      [[{ kind: 'channel', channel: 'group:ops' }], 'one'],
      [[{ kind: 'node', node: 'node-b' }], 'two'],
      [[{ kind: 'all' }], 'three'],
      [
        [
          { kind: 'node', node: 'node-a' },
          { kind: 'channel', channel: 'user:u1' },
        ],
        'four',
      ],
    ];
    for (const [to, text] of sends) await t.send(to, Buffer.from(text));
    await eventually(
      () => seen.length,
      (n) => n >= 5,
      'five messages on the raw client',
    );
    const p = t.prefix;
    assert.deepEqual(
      seen.map((m) => m.subject),
      [`${p}.ch.group:ops`, `${p}.node.node-b`, `${p}.all`, `${p}.node.node-a`, `${p}.ch.user:u1`],
    );
    assert.deepEqual(
      seen.map((m) => m.string()),
      ['one', 'two', 'three', 'four', 'four'],
    );
    assert.equal(t.subject({ kind: 'node', node: 'n.1' }), `${p}.node.n%2E1`);

    for (const to of [{ kind: 'channel', channel: 'group:ops' }, { kind: 'node', node: 'node-b' }, { kind: 'all' }] as const)
      await t.bind(to);
    for (const subject of [`${p}.ch.group:ops`, `${p}.node.node-b`, `${p}.all`]) raw.publish(subject, subject);
    await raw.flush();
    await eventually(
      () => got.texts,
      (x) => x.length >= 3,
      'three payloads from the raw client',
    );
    assert.deepEqual(got.texts, [`${p}.ch.group:ops`, `${p}.node.node-b`, `${p}.all`]);
    assert.ok(
      got.payloads.every((b) => Buffer.isBuffer(b)),
      'payloads are Buffers',
    );
  });

  it('escapes ., *, > and friends into one token: no channel matches, or leaks into, another', async () => {
    const names = [
      'group:a',
      'group:a.b',
      'group:a.b.c',
      'group:*',
      'group:>',
      'group:.',
      'group:a|b:{ch:x}.*>#',
      'group:%2E',
      'group:a b',
      'group:é',
      '>',
      '*',
      '',
    ];
    const tokens = names.map(subjectToken);
    assert.equal(new Set(tokens).size, names.length, 'collision-free');
    for (const [i, token] of tokens.entries()) {
      assert.match(token, /^[A-Za-z0-9_:%-]+$/, `one plain token for ${JSON.stringify(names[i])}`);
      assert.equal(fromSubjectToken(token), names[i], 'reversible');
    }
    assert.equal(subjectToken('group:a|b:{ch:x}.*>#'), 'group:a%7Cb:%7Bch:x%7D%2E%2A%3E%23');

    const a = await started();
    const b = await started({ prefix: a.t.prefix });
    const seen = await watchPrefix(a.t.prefix);
    // B binds the wildcard-looking and dotted names only; A sends to every name.
    const bound = ['group:*', 'group:>', 'group:a.b', '>', 'group:a|b:{ch:x}.*>#'];
    for (const channel of bound) await b.t.bind({ kind: 'channel', channel });
    for (const channel of names) await a.t.send([{ kind: 'channel', channel }], Buffer.from(`to ${channel}`));
    await b.t.bind({ kind: 'channel', channel: 'group:marker' });
    await a.t.send([{ kind: 'channel', channel: 'group:marker' }], Buffer.from('marker'));
    await eventually(
      () => b.got.texts,
      (x) => x.includes('marker'),
      'the marker',
    );
    assert.deepEqual(
      b.got.texts,
      [...names.filter((n) => bound.includes(n)).map((n) => `to ${n}`), 'marker'],
      'exactly the bound names, once each',
    );
    await eventually(
      () => seen.length,
      (n) => n >= names.length + 1,
      'every send on the raw client',
    );
    for (const m of seen)
      assert.equal(m.subject.split('.').length, a.t.prefix.split('.').length + 2, `${m.subject}: prefix, ch, one token`);
  });

  it('confirms every send of one event-loop turn with one flush, in order', async () => {
    const { t } = await started();
    const seen = await watchPrefix(t.prefix);
    const nc = (t as unknown as { nc: NatsConnection }).nc;
    let flushes = 0;
    const flush = nc.flush.bind(nc);
    nc.flush = () => (flushes++, flush());
    const to: Destination[] = [{ kind: 'channel', channel: 'group:ops' }];
    await Promise.all(Array.from({ length: 500 }, (_, i) => t.send(to, Buffer.from(String(i)))));
    assert.equal(flushes, 1, '500 sends of one turn, one PING');
    await t.send(to, Buffer.from('500'));
    await t.send(to, Buffer.from('501'));
    assert.equal(flushes, 3, 'one PING per turn after that');
    await eventually(
      () => seen.length,
      (n) => n >= 502,
      'every send delivered',
    );
    assert.deepEqual(
      seen.map((m) => m.string()),
      Array.from({ length: 502 }, (_, i) => String(i)),
    );
  });

  it('while the server is down: not ready, send and bind reject within 1 s, one down and one up, bindings restored but not unbound ones', async () => {
    const own = await PrivateServer.nats();
    // Credentials the server does not ask for (it ignores them): they must stay out of every message.
    // A long reconnect wait: left to the client, a send while down would wait for the next attempt.
    const t = new NatsTransport({ reconnectWaitMs: 1500, url: `nats://alice:s3cret-pw@127.0.0.1:${own.port}`, prefix: nextPrefix() });
    open.push(t);
    const got = new Recorder();
    try {
      await t.start(got);
      const kept: Destination = { kind: 'channel', channel: 'group:kept' };
      const gone: Destination = { kind: 'channel', channel: 'group:gone' };
      await t.bind(kept);
      await t.bind(gone);
      assert.equal(t.ready, true);

      await own.stop();
      // Sent as the server dies, before the client may have noticed: it must settle, never hang or pass.
      await rejectsWithin(3000, () => t.send([kept], Buffer.from('lost')), unavailable, 'a send as the link dies');
      await eventually(
        () => t.ready,
        (r) => !r,
        'not ready while down',
      );
      const errs = [
        await rejectsWithin(1000, () => t.send([kept], Buffer.from('x')), unavailable, 'a send while down'),
        await rejectsWithin(1000, () => t.bind({ kind: 'channel', channel: 'group:new' }), unavailable, 'a bind while down'),
      ];
      for (const err of errs) assert.doesNotMatch((err as Error).message, /s3cret-pw/);
      await t.unbind(gone);
      assert.deepEqual(got.links, ['down']);

      await own.start();
      await eventually(
        () => got.links,
        (l) => l.length >= 2,
        'the link back up',
        10_000,
      );
      assert.equal(t.ready, true);
      const peer = await connect({ servers: `127.0.0.1:${own.port}` });
      try {
        peer.publish(t.subject(gone), 'to gone');
        peer.publish(t.subject(kept), 'to kept');
        await peer.flush();
        await eventually(
          () => got.texts,
          (x) => x.includes('to kept'),
          'delivery on the restored binding',
        );
      } finally {
        await peer.close();
      }
      assert.deepEqual(got.texts, ['to kept'], 'the binding dropped while down was not restored');
      assert.deepEqual(got.links, ['down', 'up'], 'once per transition');
      await t.send([kept], Buffer.from('after'));
      for (const e of got.errors) assert.doesNotMatch(String((e.err as Error)?.message), /s3cret-pw/);
    } finally {
      await t.close();
      await own.stop();
    }
  });

  it('rejects a send when the server stops answering (bounded flush), and never resolves it', async () => {
    const silent = await fakeNats({ answerPings: 1 });
    try {
      const t = new NatsTransport({ url: `nats://127.0.0.1:${silent.port}`, prefix: nextPrefix(), confirmTimeoutMs: 300 });
      open.push(t);
      await t.start(new Recorder());
      assert.equal(t.ready, true);
      const err = await rejectsWithin(1000, () => t.send([{ kind: 'all' }], Buffer.from('x')), unavailable, 'a send without a PONG');
      assert.match((err as Error).message, /no answer to flush within 300 ms/);
      await t.close();
    } finally {
      silent.close();
    }
  });

  it('connect fails fast and clearly for a closed port, within the timeout for a mute one, naming NATS_URL', async () => {
    assert.ok(NATS_CONNECT_TIMEOUT_MS <= 5000);
    const port = await freeLoopbackPort();
    const err = (await rejectsWithin(
      2000,
      () => new NatsTransport({ url: `nats://127.0.0.1:${port}` }).connect(),
      (e) => e instanceof BrokerUnreachableError,
      'closed port',
    )) as BrokerUnreachableError;
    assert.equal(err.code, 'ERR_BROKER_UNREACHABLE');
    assert.match(
      err.message,
      new RegExp(`^NATS is not reachable at nats://127\\.0\\.0\\.1:${port} \\(NATS_URL\\): .+\\. Start nats-server`),
    );

    const mute = await fakeNats({ info: false });
    try {
      const t0 = Date.now();
      const late = (await rejectsWithin(
        2000,
        () => new NatsTransport({ url: `nats://127.0.0.1:${mute.port}`, connectTimeoutMs: 500 }).connect(),
        (e) => e instanceof BrokerUnreachableError,
        'mute server',
      )) as Error;
      assert.ok(Date.now() - t0 >= 450, 'waited for the timeout');
      assert.match(late.message, /NATS_URL/);
    } finally {
      mute.close();
    }
    await assert.rejects(
      new NatsTransport({ url: 'http://user:pw@host' }).connect(),
      (e: Error) => e instanceof BrokerUnreachableError && /NATS_URL is not a NATS URL \(http:\/\/user:\[REDACTED\]@host\)/.test(e.message),
    );
  });

  it('sends the URL credentials, and never shows them in an error message', async () => {
    assert.equal(redactNatsUrl('nats://alice:pw@h:4222,nats://tok@h2'), 'nats://alice:[REDACTED]@h:4222,nats://[REDACTED]@h2');
    assert.equal(redactNatsUrl('nats://alice:p@ss@h'), 'nats://alice:[REDACTED]@h');
    assert.equal(redactNatsUrl('nats://h:4222'), 'nats://h:4222');
    const closed = await freeLoopbackPort();
    for (const url of [`nats://alice:s3cret-pw@127.0.0.1:${closed}`, `nats://s3cret-pw@127.0.0.1:${closed}`]) {
      await assert.rejects(
        new NatsTransport({ url }).connect(),
        (e: Error) => e instanceof BrokerUnreachableError && !e.message.includes('s3cret-pw') && e.message.includes('[REDACTED]'),
      );
    }

    const userPass = await natsServerWith(['--user', 'alice', '--pass', 'p@ss:w/rd']);
    const tokenAuth = await natsServerWith(['--auth', 'tok3n-value']);
    try {
      const wrong = new NatsTransport({ url: `nats://alice:wr0ng-pw@127.0.0.1:${userPass.port}` });
      await assert.rejects(
        wrong.connect(),
        (e: Error) =>
          e instanceof BrokerUnreachableError &&
          !e.message.includes('wr0ng-pw') &&
          /NATS_URL/.test(e.message) &&
          /password/.test(e.message),
      );
      for (const url of [
        `nats://alice:${encodeURIComponent('p@ss:w/rd')}@127.0.0.1:${userPass.port}`,
        `nats://tok3n-value@127.0.0.1:${tokenAuth.port}`,
      ]) {
        const t = new NatsTransport({ url, prefix: nextPrefix() });
        open.push(t);
        const got = new Recorder();
        await t.start(got);
        await t.bind({ kind: 'all' });
        await t.send([{ kind: 'all' }], Buffer.from('authenticated'));
        await eventually(
          () => got.texts,
          (x) => x.length === 1,
          `a round trip with ${redactNatsUrl(url)}`,
        );
        await t.close();
      }
    } finally {
      await userPass.stop();
      await tokenAuth.stop();
    }
  });

  it('reports what the server refuses: a denied publish through error, a denied subscribe as a rejected bind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
    const config = join(dir, 'nats.conf');
    writeFileSync(
      config,
      'authorization { users = [ { user: alice, password: pw, permissions: { publish: { deny: ["sbdeny.ch.>"] }, subscribe: { deny: ["sbdeny.node.>"] } } } ] }\n',
    );
    const guarded = await natsServerWith(['-c', config]);
    try {
      const t = new NatsTransport({ url: `nats://alice:pw@127.0.0.1:${guarded.port}`, prefix: 'sbdeny' });
      open.push(t);
      const got = new Recorder();
      await t.start(got);
      // Core NATS has no per-publish answer: the flush passes, the -ERR comes as an error.
      await t.send([{ kind: 'channel', channel: 'group:ops' }], Buffer.from('x'));
      await eventually(
        () => got.errors,
        (e) => e.length >= 1,
        'the publish violation reported',
      );
      assert.match(String((got.errors[0]!.err as Error).message), /Permissions Violation for Publish to "sbdeny\.ch\.group:ops"/);
      await assert.rejects(
        t.bind({ kind: 'node', node: 'node-b' }),
        /NATS refused the subscription to sbdeny\.node\.node-b: .*Permissions Violation/,
      );
      await t.bind({ kind: 'all' });
      await t.send([{ kind: 'all' }], Buffer.from('allowed'));
      await eventually(
        () => got.texts,
        (x) => x.length === 1,
        'an allowed round trip',
      );
      await t.close();
    } finally {
      await guarded.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close drains and is idempotent: nothing is delivered after it, sends and binds reject', async () => {
    const { t, got } = await started();
    const to: Destination = { kind: 'channel', channel: 'group:ops' };
    await t.bind(to);
    await Promise.all([t.close(), t.close()]);
    await t.close();
    assert.equal(t.ready, false);
    raw.publish(t.subject(to), 'after close');
    await raw.flush();
    await assert.rejects(t.send([to], Buffer.from('x')), unavailable);
    await assert.rejects(t.bind(to), unavailable);
    await t.unbind(to);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got.payloads, []);
    assert.equal((t as unknown as { nc: NatsConnection }).nc.isClosed(), true);
  });
});

/**
 * A TCP server that speaks just enough NATS: it sends INFO (unless `info: false`) and answers the
 * first `answerPings` PINGs, then nothing — a server that hangs, as a half-open link looks.
 */
async function fakeNats(options: { info?: boolean; answerPings?: number }): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let pongs = options.answerPings ?? 0;
    if (options.info !== false)
      socket.write(
        `INFO {"server_id":"fake","version":"2.9.10","go":"go1","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"proto":1}\r\n`,
      );
    socket.on('data', (chunk) => {
      for (const _ of chunk.toString().matchAll(/PING\r\n/g)) if (pongs-- > 0) socket.write('PONG\r\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
