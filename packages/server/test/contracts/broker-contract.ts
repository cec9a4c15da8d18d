/**
 * The Broker contract: what every broker backend must do, run against each of them from
 * broker.contract.test.ts (socket.io-redis-adapter's test-runner is the model). A backend is given
 * as a harness with two brokers, as two nodes of one cluster have them: what node A publishes
 * reaches node B when B subscribed. Each routing strategy runs the whole suite; a harness that can
 * take its backend away (`outage`) runs the outage cases too. A new backend is one harness here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Broker, BrokerHandler, BrokerMessage, LinkState } from '../../src/broker/broker.js';
import type { Routing } from '../../src/broker/routing.js';
import { HashRing } from '../../src/registry/hash-ring.js';
import { RingHolder } from '../../src/registry/ring-holder.js';
import { eventually } from './registry-contract.js';

/** Two nodes' brokers (not started) of one cluster. */
export interface BrokerPair {
  a: Broker;
  b: Broker;
  /** Closes both brokers and releases what the harness opened. */
  cleanup(): Promise<void>;
  /** Takes the backend away from both brokers, and gives it back (outage cases run only with it). */
  outage?: { down(): Promise<void>; up(): Promise<void> };
}

/** How a harness builds a pair: node ids `node-a` and `node-b`, the routing, the ring both see. */
export type MakePair = (setup: { routing: Routing; ring: RingHolder }) => Promise<BrokerPair>;

/** What one node's broker handler received, in order. */
export class Received implements BrokerHandler {
  readonly all: { channel: string; message: BrokerMessage }[] = [];
  readonly links: LinkState[] = [];
  readonly errors: { err: unknown; what: string }[] = [];
  /** Throws on the next message (a handler bug the broker must survive). */
  throwNext = false;

  message(channel: string, message: BrokerMessage): void {
    if (this.throwNext) {
      this.throwNext = false;
      throw new Error('handler bug');
    }
    this.all.push({ channel, message });
  }

  link(state: LinkState): void {
    this.links.push(state);
  }

  error(err: unknown, what: string): void {
    this.errors.push({ err, what });
  }

  /** Messages received on `channel`, in order. */
  on(channel: string): BrokerMessage[] {
    return this.all.filter((r) => r.channel === channel).map((r) => r.message);
  }

  /** Waits until `channel` has received at least `count` messages. */
  async wait(channel: string, count: number, timeoutMs = 5000): Promise<BrokerMessage[]> {
    return eventually(
      () => this.on(channel),
      (m) => m.length >= count,
      `${count} messages on ${channel} (have ${this.on(channel).length})`,
      timeoutMs,
    );
  }
}

/** A publication as the node sends it: its position and its serialised `message` frame. */
export function publication(channel: string, offset: number, data: unknown = { n: offset }, epoch = 'e-Az_09'): BrokerMessage {
  const frame = JSON.stringify({
    type: 'message',
    channel,
    epoch,
    offset,
    from: 'alice',
    topic: 'chat',
    data,
    ts: 1_732_370_000_000 + offset,
  });
  return { kind: 'message', epoch, offset, frame: Buffer.from(frame) };
}

export const offsets = (messages: BrokerMessage[]): number[] => messages.map((m) => (m.kind === 'message' ? m.offset : -1));

/** Starts both brokers of a pair with recorders. */
export async function startPair(pair: BrokerPair): Promise<{ a: Received; b: Received }> {
  const a = new Received();
  const b = new Received();
  await pair.a.start(a);
  await pair.b.start(b);
  return { a, b };
}

/** A ring of the two harness nodes. */
function twoNodeRing(): RingHolder {
  const ring = new RingHolder();
  ring.set(HashRing.from(['node-a', 'node-b']));
  return ring;
}

/** A user channel whose owner on `ring` is `node`. */
function ownedBy(ring: RingHolder, node: string): string {
  for (let i = 0; ; i++) if (ring.ownerOf(`user:u${i}`) === node) return `user:u${i}`;
}

const within = async (ms: number, what: string, fn: () => Promise<unknown>): Promise<void> => {
  const t0 = Date.now();
  await assert.rejects(fn(), Error, what);
  assert.ok(Date.now() - t0 < ms, `${what}: rejected after ${Date.now() - t0} ms, not within ${ms} ms`);
};

/** Registers the broker contract (call inside a `describe`): the suite per routing strategy. */
export function brokerContract(
  makePair: MakePair,
  options: { routings?: readonly Routing[]; /** The backend has no link to lose (memory). */ noOutage?: boolean } = {},
): void {
  const routings = options.routings ?? ['interest', 'broadcast', 'hash'];
  for (const routing of routings) describe(`${routing} routing`, () => routingContract(makePair, routing, !options.noOutage));
}

function routingContract(makePair: MakePair, routing: Routing, outages: boolean): void {
  async function withPair(fn: (pair: BrokerPair, got: { a: Received; b: Received }, ring: RingHolder) => Promise<void>): Promise<void> {
    const ring = twoNodeRing();
    const pair = await makePair({ routing, ring });
    try {
      await fn(pair, await startPair(pair), ring);
    } finally {
      await pair.cleanup();
    }
  }

  it('delivers 1,000 publications to the subscribed node exactly once and in order', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      const sent: Promise<void>[] = [];
      for (let offset = 1; offset <= 1000; offset++) sent.push(pair.a.publish('group:ops', publication('group:ops', offset)));
      await Promise.all(sent);
      // A marker after the burst: once it is in, a duplicate of the burst would be in too.
      await pair.a.publish('group:ops', publication('group:ops', 1001));
      const messages = await got.b.wait('group:ops', 1001, 15_000);
      assert.deepEqual(
        offsets(messages),
        Array.from({ length: 1001 }, (_, i) => i + 1),
      );
      assert.deepEqual(messages[0], publication('group:ops', 1), 'the message arrives as it was published');
      assert.deepEqual(got.a.all, [], 'the publishing node did not subscribe, so it receives nothing');
    }));

  it('does not deliver a channel the node has not subscribed to', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      await pair.a.publish('group:dev', publication('group:dev', 1));
      await pair.a.publish('group:ops', publication('group:ops', 1));
      await got.b.wait('group:ops', 1);
      assert.deepEqual(
        got.b.all.map((r) => r.channel),
        ['group:ops'],
      );
    }));

  it('delivers to the publishing node too when it subscribed', () =>
    withPair(async (pair, got) => {
      await pair.a.subscribe('group:ops');
      await pair.b.subscribe('group:ops');
      await pair.a.publish('group:ops', publication('group:ops', 7));
      assert.deepEqual(await got.a.wait('group:ops', 1), [publication('group:ops', 7)]);
      assert.deepEqual(await got.b.wait('group:ops', 1), [publication('group:ops', 7)]);
    }));

  it('delivers a user channel to its owner node and to a node that is not its owner, once each', () =>
    withPair(async (pair, got, ring) => {
      const owned = ownedBy(ring, 'node-b');
      await pair.a.subscribe(owned);
      await pair.b.subscribe(owned);
      await pair.a.publish(owned, publication(owned, 1));
      await pair.b.publish(owned, publication(owned, 2));
      await pair.a.subscribe('group:marker');
      await pair.b.subscribe('group:marker');
      await pair.a.publish('group:marker', publication('group:marker', 1));
      await got.a.wait('group:marker', 1);
      await got.b.wait('group:marker', 1);
      assert.deepEqual(offsets(await got.b.wait(owned, 2)), [1, 2], 'the owner');
      assert.deepEqual(offsets(await got.a.wait(owned, 2)), [1, 2], 'a session of the user on another node');
    }));

  it('stops delivering a channel after unsubscribe', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      await pair.b.subscribe('group:marker');
      await pair.a.publish('group:ops', publication('group:ops', 1));
      await got.b.wait('group:ops', 1);
      await pair.b.unsubscribe('group:ops');
      await pair.a.publish('group:ops', publication('group:ops', 2));
      await pair.a.publish('group:marker', publication('group:marker', 1));
      await got.b.wait('group:marker', 1);
      assert.deepEqual(offsets(got.b.on('group:ops')), [1]);
    }));

  it('treats a repeated subscribe as one (the caller reference-counts, not the broker)', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      await pair.b.subscribe('group:ops');
      await pair.b.subscribe('group:marker');
      await pair.a.publish('group:ops', publication('group:ops', 1));
      await pair.a.publish('group:marker', publication('group:marker', 1));
      await got.b.wait('group:marker', 1);
      assert.deepEqual(offsets(got.b.on('group:ops')), [1], 'delivered once despite two subscribes');
      await pair.b.unsubscribe('group:ops');
      await pair.b.unsubscribe('group:ops');
      await pair.b.unsubscribe('group:never-subscribed');
      await pair.a.publish('group:ops', publication('group:ops', 2));
      await pair.a.publish('group:marker', publication('group:marker', 2));
      await got.b.wait('group:marker', 2);
      assert.deepEqual(offsets(got.b.on('group:ops')), [1], 'one unsubscribe ends two subscribes');
    }));

  it('round-trips a publication frame byte for byte, whatever it contains', () =>
    withPair(async (pair, got) => {
      const channel = 'group:a|b:{ch:x}.*>#';
      await pair.b.subscribe(channel);
      const tricky = publication(channel, 3, { text: 'pipes | and\nnewlines, emoji 🎉, quotes "x", nul \u0000' });
      await pair.a.publish(channel, tricky);
      assert.deepEqual(await got.b.wait(channel, 1), [tricky]);
    }));

  it('round-trips presence events and disconnect orders, separators included', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      const join: BrokerMessage = { kind: 'presence', channel: 'group:ops', event: 'join', user: 'carol|x:1', ts: 1_732_370_000_123 };
      const leave: BrokerMessage = { kind: 'presence', channel: 'group:ops', event: 'leave', user: 'dave', ts: 1_732_370_000_456 };
      await pair.a.publish('group:ops', join);
      await pair.a.publish('group:ops', leave);
      assert.deepEqual(await got.b.wait('group:ops', 2), [join, leave]);
      const channel = 'user:eve|42';
      await pair.b.subscribe(channel);
      const kick: BrokerMessage = { kind: 'disconnect', user: 'eve|42', code: 4003, reason: 'kicked | by 4003|admin ✓\n' };
      const empty: BrokerMessage = { kind: 'disconnect', user: 'eve|42', code: 1000, reason: '' };
      await pair.a.publish(channel, kick);
      await pair.a.publish(channel, empty);
      assert.deepEqual(await got.b.wait(channel, 2), [kick, empty]);
    }));

  it('reports a throwing handler and keeps delivering', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      got.b.throwNext = true;
      for (let offset = 1; offset <= 3; offset++) await pair.a.publish('group:ops', publication('group:ops', offset));
      assert.deepEqual(offsets(await got.b.wait('group:ops', 2)), [2, 3]);
      assert.equal(got.b.errors.length, 1);
      assert.match(String(got.b.errors[0]!.err), /handler bug/);
    }));

  it('is ready once started; after close it is not, rejects publishes and close is idempotent', () =>
    withPair(async (pair, got) => {
      assert.equal(pair.a.ready, true);
      assert.equal(pair.b.ready, true);
      await pair.b.subscribe('group:ops');
      await pair.b.close();
      await pair.b.close();
      assert.equal(pair.b.ready, false);
      await assert.rejects(pair.b.publish('group:ops', publication('group:ops', 1)));
      // Node A still works and hears its own publication; B, closed, must not.
      await pair.a.subscribe('group:ops');
      await pair.a.publish('group:ops', publication('group:ops', 2));
      await got.a.wait('group:ops', 1);
      await pair.a.subscribe('group:marker');
      await pair.a.publish('group:marker', publication('group:marker', 1));
      await got.a.wait('group:marker', 1);
      assert.deepEqual(got.b.all, []);
    }));

  if (!outages) return;
  it('in an outage: not ready, fails fast, says so; then restores every subscription by itself', async () => {
    const ring = twoNodeRing();
    const pair = await makePair({ routing, ring });
    try {
      if (!pair.outage) assert.fail('the harness gives no outage hook: pass { noOutage: true } for a backend without a link');
      const got = await startPair(pair);
      const channels = ['group:ops', 'group:dev', ownedBy(ring, 'node-b'), ownedBy(ring, 'node-a')];
      for (const channel of [...channels, 'group:gone']) await pair.b.subscribe(channel);
      for (const channel of channels) await pair.a.publish(channel, publication(channel, 1));
      for (const channel of channels) await got.b.wait(channel, 1);

      await pair.outage.down();
      await eventually(
        () => pair.a.ready || pair.b.ready,
        (ready) => !ready,
        'both brokers not ready',
        15_000,
      );
      await within(1000, 'a publish while down', () => pair.a.publish('group:ops', publication('group:ops', 2)));
      await within(1000, 'a new subscribe while down', () => pair.b.subscribe('group:new'));
      await pair.b.unsubscribe('group:gone');
      await eventually(
        () => got.b.links,
        (l) => l.includes('down'),
        'the link reported down',
      );

      await pair.outage.up();
      await eventually(() => pair.a.ready && pair.b.ready, Boolean, 'both ready again', 30_000);
      await eventually(
        () => got.b.links,
        (l) => l.at(-1) === 'up',
        'the link reported up again',
        10_000,
      );
      // Nothing re-subscribes but the broker itself: publish until every channel is heard again.
      await eventually(
        async () => {
          for (const channel of channels) await pair.a.publish(channel, publication(channel, 3)).catch(() => undefined);
          return channels.map((channel) => got.b.on(channel).length);
        },
        (counts) => counts.every((n) => n >= 2),
        'delivery on every channel after the outage',
        15_000,
      );
      await pair.a.publish('group:gone', publication('group:gone', 9));
      await pair.a.publish('group:ops', publication('group:ops', 10));
      await eventually(
        () => offsets(got.b.on('group:ops')),
        (o) => o.includes(10),
        'the marker after the outage',
      );
      assert.deepEqual(
        got.b.on('group:gone').map((m) => m.kind === 'message' && m.offset),
        [],
        'a channel unsubscribed while down is not restored',
      );
      for (const channel of channels) {
        const seen = offsets(got.b.on(channel));
        assert.deepEqual(
          [...seen].sort((x, y) => x - y),
          seen,
          `${channel} in order`,
        );
      }
    } finally {
      await pair.cleanup();
    }
  });
}
