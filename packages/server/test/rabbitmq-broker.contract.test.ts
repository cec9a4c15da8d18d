/**
 * The broker contract (contracts/broker-contract.ts) on RabbitMQ — the cluster protocol
 * (ClusterBroker) over RabbitMqTransport — with every routing strategy, on a private RabbitMQ node
 * that the outage case kills and restarts. Then, in a vhost of the file's own on the shared
 * RabbitMQ, what only RabbitMQ shows: the topology,
 * the backlog kept for a node that is away, prefetch, failing fast, and never leaking the password.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Connection } from 'rabbitmq-client';
import type { LinkState } from '../src/broker/broker.js';
import { ClusterBroker } from '../src/broker/cluster-broker.js';
import { BrokerUnreachableError } from '../src/broker/broker-unreachable.js';
import { RabbitMqTransport, redactAmqpUrl, type RabbitMqTransportOptions } from '../src/broker/rabbitmq-transport.js';
import { Router, type Routing } from '../src/broker/routing.js';
import type { Destination, TransportHandler } from '../src/broker/transport.js';
import { SwitchboardError } from '../src/errors.js';
import { HashRing } from '../src/registry/hash-ring.js';
import { RingHolder } from '../src/registry/ring-holder.js';
import { brokerContract, startPair } from './contracts/broker-contract.js';
import { eventually } from './contracts/registry-contract.js';
import { RabbitVhost, rabbitSkip, type QueueRow } from './support/rabbitmq.js';
import { PrivateServer, freeLoopbackPort } from './support/servers.js';

/** What one transport handed its broker, links with their details. */
class Recorder implements TransportHandler {
  readonly payloads: string[] = [];
  readonly links: { state: LinkState; detail: string }[] = [];
  readonly errors: { err: unknown; what: string }[] = [];
  /** Called on each payload before it is recorded; a throw is the handler bug the transport must survive. */
  onBytes: ((payload: string) => void) | undefined;

  bytes(payload: Buffer): void {
    const text = payload.toString();
    this.onBytes?.(text);
    this.payloads.push(text);
  }

  link(state: LinkState, detail: string): void {
    this.links.push({ state, detail });
  }

  error(err: unknown, what: string): void {
    this.errors.push({ err, what });
  }

  /** Waits until `count` payloads are in. */
  async wait(count: number, timeoutMs = 10_000): Promise<string[]> {
    return eventually(
      () => this.payloads,
      (p) => p.length >= count,
      `${count} payloads (have ${this.payloads.length})`,
      timeoutMs,
    );
  }
}

const channel = (name: string): Destination => ({ kind: 'channel', channel: name });

let pairs = 0;
/** A prefix per pair or test, so that nothing left from an earlier one can reach it. */
const nextPrefix = () => `sb${++pairs}.`;

// On a private RabbitMQ node, so that the outage case can kill it (SIGKILL) and start it again:
// a real broker restart, durable topology kept, transient messages lost.
describe('RabbitMQ broker contract', { skip: rabbitSkip }, () => {
  let server: PrivateServer | undefined;
  after(() => server?.dispose());
  brokerContract(async ({ routing, ring }) => {
    server ??= await PrivateServer.rabbitmq();
    const s = server;
    const prefix = nextPrefix();
    const make = (node: string) =>
      new ClusterBroker({
        transport: new RabbitMqTransport({ url: `amqp://guest:guest@127.0.0.1:${s.port}`, nodeId: node, prefix, reconnectMaxMs: 500 }),
        router: new Router(routing, node, ring),
        ring,
      });
    const a = make('node-a');
    const b = make('node-b');
    return {
      a,
      b,
      outage: { down: () => s.stop(), up: () => s.start() },
      cleanup: async () => {
        // A failed outage case must not leave the next cases without a broker.
        await s.start();
        await Promise.allSettled([a.close(), b.close()]);
      },
    };
  });
});

describe('RabbitMQ transport', { skip: rabbitSkip }, () => {
  const vhost = new RabbitVhost();
  const transports: RabbitMqTransport[] = [];
  before(() => vhost.create());
  after(async () => {
    await Promise.allSettled(transports.map((t) => t.close()));
    await vhost.delete();
  });
  const transport = (options: Partial<RabbitMqTransportOptions> & { nodeId: string; prefix: string }) => {
    const t = new RabbitMqTransport({ url: vhost.url(), reconnectMaxMs: 500, ...options });
    transports.push(t);
    return t;
  };
  /** A user of the test's own, so that RabbitMQ can be taken away from one node only. */
  const user = async () => {
    const name = `sbtest-${randomUUID().slice(0, 8)}`;
    const password = `pw-${randomUUID()}`;
    await vhost.addUser(name, password);
    return { name, password, url: vhost.url(name, password) };
  };

  it('declares a durable direct exchange and a durable classic queue per node with x-expires, binds as the routing says, and close unbinds', async () => {
    const pair = async (routing: Routing, ring: RingHolder, prefix: string) => {
      const make = (node: string) =>
        new ClusterBroker({
          transport: transport({ nodeId: node, prefix, queueExpiresMs: 45_000 }),
          router: new Router(routing, node, ring),
          ring,
        });
      const p = { a: make('node-a'), b: make('node-b'), cleanup: async () => undefined };
      await startPair(p);
      return p;
    };
    const ring = new RingHolder();
    ring.set(HashRing.from(['node-a', 'node-b']));
    const owned = (node: string) => {
      for (let i = 0; ; i++) if (ring.ownerOf(`user:u${i}`) === node) return `user:u${i}`;
    };
    const [hp, bp] = [nextPrefix(), nextPrefix()];
    const hash = await pair('hash', ring, hp);
    const broadcast = await pair('broadcast', ring, bp);
    await hash.b.subscribe('group:a|b:{ch:x}.*>#');
    await hash.b.subscribe(owned('node-a'));
    await hash.b.subscribe(owned('node-b'));
    await broadcast.b.subscribe('group:ops');

    const [exchanges, queues, bindings] = await Promise.all([vhost.exchanges(), vhost.queues(), vhost.bindings()]);
    for (const prefix of [hp, bp]) {
      assert.deepEqual(
        exchanges.find((e) => e.name === `${prefix}cluster`),
        { name: `${prefix}cluster`, type: 'direct', durable: true },
      );
      for (const node of ['node-a', 'node-b']) {
        const q = queues.find((row) => row.name === `${prefix}node.${node}`);
        assert.ok(q, `queue ${prefix}node.${node}`);
        assert.equal(q.durable, true);
        assert.equal(q.arguments['x-expires'], 45_000);
        assert.equal(q.arguments['x-queue-type'] ?? 'classic', 'classic');
        assert.equal(q.consumers, 1, 'the node consumes its queue');
      }
    }
    const keys = (prefix: string, node: string) =>
      bindings
        .filter((b) => b.source_name === `${prefix}cluster` && b.destination_name === `${prefix}node.${node}`)
        .map((b) => b.routing_key)
        .sort();
    // Hash: each node its own address; B the channels it does not own, by exact key (`*`, `#` and `.` are not wildcards).
    assert.deepEqual(keys(hp, 'node-a'), ['node.node-a']);
    assert.deepEqual(keys(hp, 'node-b'), [`ch.${owned('node-a')}`, 'ch.group:a|b:{ch:x}.*>#', 'node.node-b'].sort());
    // Broadcast: every node takes `all`, and nothing per channel.
    assert.deepEqual(keys(bp, 'node-a'), ['all']);
    assert.deepEqual(keys(bp, 'node-b'), ['all']);

    await Promise.all([hash.a.close(), hash.b.close(), broadcast.a.close(), broadcast.b.close()]);
    const [afterClose, queuesAfter] = await Promise.all([vhost.bindings(), vhost.queues()]);
    assert.deepEqual(
      afterClose.filter((b) => b.source_name === `${hp}cluster` || b.source_name === `${bp}cluster`),
      [],
      'close drops the bindings',
    );
    const left = queuesAfter.filter((q) => q.name.startsWith(hp) || q.name.startsWith(bp));
    assert.equal(left.length, 4, 'close leaves the queues to x-expires');
    assert.ok(
      left.every((q) => q.consumers === 0),
      'and stops consuming',
    );
  });

  it('sends to several destinations in one publish: a queue bound to several of them gets it once', async () => {
    const prefix = nextPrefix();
    const [a, b] = [transport({ nodeId: 'node-a', prefix }), transport({ nodeId: 'node-b', prefix })];
    const got = new Recorder();
    await a.start(new Recorder());
    await b.start(got);
    await b.bind({ kind: 'node', node: 'node-b' });
    await b.bind(channel('user:u1'));
    await a.send([{ kind: 'node', node: 'node-b' }, channel('user:u1')], Buffer.from('both'));
    await a.send([channel('user:u1')], Buffer.from('marker'));
    assert.deepEqual(await got.wait(2), ['both', 'marker']);
  });

  it('sends the publications of one turn in a few writes, confirms each, delivers them in order, and acks them all', async () => {
    const prefix = nextPrefix();
    const [a, b] = [transport({ nodeId: 'node-a', prefix }), transport({ nodeId: 'node-b', prefix })];
    const got = new Recorder();
    await a.start(new Recorder());
    await b.start(got);
    await b.bind(channel('group:ops'));
    // The publishing socket's writes (each one a system call and a TCP segment or more).
    const socket = (a as unknown as { pubConn: { _socket: { _write: unknown; _writev: unknown } } }).pubConn._socket;
    let writes = 0;
    for (const method of ['_write', '_writev'] as const) {
      const original = socket[method] as (...args: unknown[]) => unknown;
      socket[method] = function (this: unknown, ...args: unknown[]) {
        writes++;
        return original.apply(this, args);
      };
    }
    // 500 publications of 200 bytes in one turn: more than the socket buffers before it waits for a drain.
    const count = 500;
    const body = (n: number) => Buffer.from(String(n).padEnd(200, '.'));
    await Promise.all(Array.from({ length: count }, (_, n) => a.send([channel('group:ops')], body(n))));
    assert.ok(writes <= 40, `${count} publications in ${writes} writes`);
    const payloads = await got.wait(count);
    assert.deepEqual(
      payloads.map((p) => Number.parseInt(p, 10)),
      Array.from({ length: count }, (_, n) => n),
      'in order, once',
    );
    // One ack with `multiple` for many deliveries, the last of them within ACK_DELAY_MS: none left unacknowledged.
    await eventually(
      async () => (await vhost.queues()).find((q) => q.name === b.queue),
      (q) => q?.messages_unacknowledged === 0 && q.messages_ready === 0,
      'every delivery acked',
    );
  });

  it('acks a delivery whose handler throws (prefetch 1: the next ones still come) and reports it', async () => {
    const prefix = nextPrefix();
    const [a, b] = [transport({ nodeId: 'node-a', prefix }), transport({ nodeId: 'node-b', prefix, prefetch: 1 })];
    const got = new Recorder();
    got.onBytes = (p) => {
      if (p === '1') throw new Error('handler bug');
    };
    await a.start(new Recorder());
    await b.start(got);
    await b.bind(channel('group:ops'));
    for (const n of ['1', '2', '3']) await a.send([channel('group:ops')], Buffer.from(n));
    assert.deepEqual(await got.wait(2), ['2', '3']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(got.payloads, ['2', '3'], 'not redelivered');
    assert.equal(got.errors.length, 1);
    assert.match(String(got.errors[0]!.err), /handler bug/);
  });

  it('keeps what is published while a node is away in its queue, delivers it in order once back, with at most `prefetch` unacknowledged', async () => {
    const prefix = nextPrefix();
    const away = await user();
    const a = transport({ nodeId: 'node-a', prefix });
    const b = transport({ url: away.url, nodeId: 'node-b', prefix, prefetch: 5 });
    const got = new Recorder();
    await a.start(new Recorder());
    await b.start(got);
    await b.bind(channel('group:ops'));
    await a.send([channel('group:ops')], Buffer.from('0'));
    await got.wait(1);

    await vhost.revoke(away.name);
    await eventually(
      () => got.links.map((l) => l.state),
      (l) => l.includes('down'),
      'node B reported down',
    );
    assert.equal(b.ready, false);
    // A (guest) lost its connection too, and is let back in at once.
    await eventually(() => a.ready, Boolean, 'node A back', 10_000);
    for (let n = 1; n <= 20; n++) await a.send([channel('group:ops')], Buffer.from(String(n)));
    const queue = (rows: QueueRow[]) => rows.find((q) => q.name === b.queue);
    const waiting = queue(await vhost.queues());
    assert.equal(waiting?.messages_ready, 20, 'the data stays in RabbitMQ while the node is away');
    assert.equal(waiting?.consumers, 0);

    // On the first delivery after the outage, before it is acked: RabbitMQ has sent no more than the prefetch.
    let inFlight: QueueRow | undefined;
    got.onBytes = (p) => {
      if (p === '1') inFlight = queue(vhost.queuesNow());
    };
    await vhost.grant(away.name);
    const payloads = await got.wait(21, 15_000);
    assert.deepEqual(
      payloads,
      Array.from({ length: 21 }, (_, i) => String(i)),
      'all of it, in order, once',
    );
    assert.equal(inFlight?.messages_unacknowledged, 5, 'prefetch 5: five unacknowledged');
    assert.equal(inFlight?.messages_ready, 15);
    await eventually(
      () => got.links.at(-1)?.state,
      (s) => s === 'up',
      'node B reported up',
    );
  });

  it('rejects a send and a bind within 1 s while RabbitMQ is away (ERR_UNAVAILABLE), restores an unbound-while-down binding to nothing, and never shows the password', async () => {
    const prefix = nextPrefix();
    const away = await user();
    const got = new Recorder();
    const t = transport({ url: away.url, nodeId: 'node-b', prefix });
    await t.start(got);
    await t.bind(channel('group:ops'));
    await t.bind(channel('group:gone'));

    await vhost.revoke(away.name);
    await eventually(
      () => t.ready,
      (ready) => !ready,
      'not ready',
      10_000,
    );
    const failures: unknown[] = [];
    for (const attempt of [() => t.send([channel('group:ops')], Buffer.from('x')), () => t.bind(channel('group:new'))]) {
      const t0 = Date.now();
      const err = await attempt().then(
        () => assert.fail('resolved while down'),
        (e: unknown) => e,
      );
      assert.ok(Date.now() - t0 < 1000, `rejected after ${Date.now() - t0} ms`);
      assert.ok(err instanceof SwitchboardError && err.errorName === 'ERR_UNAVAILABLE', `ERR_UNAVAILABLE, got ${String(err)}`);
      failures.push(err);
    }
    await t.unbind(channel('group:gone'));
    await vhost.grant(away.name);
    await eventually(
      () => got.links.at(-1)?.state,
      (s) => s === 'up',
      'reported up',
      15_000,
    );
    assert.equal(t.ready, true);
    const keys = (await vhost.bindings()).filter((b) => b.destination_name === t.queue).map((b) => b.routing_key);
    assert.deepEqual(keys, ['ch.group:ops'], 'held binding restored, the one unbound while down removed');
    assert.deepEqual(
      got.links.map((l) => l.state),
      ['down', 'up'],
      'down once, up once',
    );

    const texts = [...failures, ...got.errors.map((e) => e.err)].map((e) => `${(e as Error).message} ${String((e as Error).cause ?? '')}`);
    texts.push(...got.links.map((l) => l.detail), ...got.errors.map((e) => e.what));
    for (const text of texts) assert.ok(!text.includes(away.password), `password leaked in: ${text}`);
    assert.ok(
      got.links.every((l) => l.detail.includes('[REDACTED]')),
      'details name the URL, redacted',
    );
  });

  it('fails to connect within about 5 s with ERR_BROKER_UNREACHABLE naming AMQP_URL, never the password', async () => {
    const password = `pw-${randomUUID()}`;
    const refused = new RabbitMqTransport({ url: `amqp://guest:${password}@127.0.0.1:${await freeLoopbackPort()}/`, nodeId: 'n' });
    const wrongPassword = new RabbitMqTransport({ url: vhost.url('guest', password), nodeId: 'n', connectTimeoutMs: 1500 });
    const t0 = Date.now();
    const [e1, e2] = await Promise.all([
      refused.connect().catch((e: unknown) => e),
      wrongPassword.start(new Recorder()).catch((e: unknown) => e),
    ]);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed < 6000, `failed after ${elapsed} ms`);
    for (const err of [e1, e2]) {
      assert.ok(err instanceof BrokerUnreachableError, `a BrokerUnreachableError, got ${String(err)}`);
      assert.equal(err.code, 'ERR_BROKER_UNREACHABLE');
      assert.match(err.message, /AMQP_URL/);
      assert.match(err.message, /amqp:\/\/guest:\[REDACTED\]@127\.0\.0\.1/);
      assert.match(err.message, /ensure-rabbitmq\.sh|apt-get install rabbitmq-server/);
      assert.ok(!err.message.includes(password), err.message);
    }
    assert.match((e1 as Error).message, /ECONNREFUSED/);
    assert.match((e2 as Error).message, /ACCESS_REFUSED/);
    assert.equal(refused.ready, false);
    await Promise.all([refused.close(), wrongPassword.close(), refused.close()]);
    assert.throws(
      () => new RabbitMqTransport({ url: `amqp://guest:${password}@bad host/`, nodeId: 'n' }),
      (err: Error) => !err.message.includes(password),
    );
    assert.equal(redactAmqpUrl('amqps://me:p@ss:w0rd@host:5671/vh'), 'amqps://me:[REDACTED]@host:5671/vh');
    assert.equal(redactAmqpUrl('amqp://host:5672/vh'), 'amqp://host:5672/vh');
  });

  it('refuses to start a second consumer of the same node id, and comes back after its queue is deleted under it', async () => {
    const prefix = nextPrefix();
    const got = new Recorder();
    const first = transport({ nodeId: 'node-b', prefix });
    await first.start(got);
    await first.bind(channel('group:ops'));
    const twin = transport({ nodeId: 'node-b', prefix });
    await assert.rejects(twin.start(new Recorder()), /another node running with id node-b/);

    // An operator deletes the queue: the consumer is cancelled, the transport declares and binds again.
    const admin = transport({ nodeId: 'admin', prefix });
    await admin.start(new Recorder());
    const conn = new Connection(vhost.url());
    conn.on('error', () => undefined);
    try {
      await conn.queueDelete({ queue: first.queue });
    } finally {
      await conn.close();
    }
    await eventually(
      () => got.links.map((l) => l.state).join(','),
      (s) => s === 'down,up',
      'down then up',
      10_000,
    );
    await admin.send([channel('group:ops')], Buffer.from('after'));
    assert.deepEqual(await got.wait(1), ['after']);
  });
});
