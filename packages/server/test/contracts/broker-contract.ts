/**
 * The Broker contract: what every broker backend must do, run against each of them from
 * broker.contract.test.ts. A backend is given as a harness with two brokers, as two nodes of one
 * cluster have them: what node A publishes reaches node B when B subscribed.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { Broker, BrokerMessage } from '../../src/broker/broker.js';
import { eventually } from './registry-contract.js';

/** Two nodes' brokers (not started) of one cluster. */
export interface BrokerPair {
  a: Broker;
  b: Broker;
  /** Closes both brokers and releases what the harness opened. */
  cleanup(): Promise<void>;
}

/** What one node's broker handler received, in order. */
export class Received {
  readonly all: { channel: string; message: BrokerMessage }[] = [];
  readonly handler = (channel: string, message: BrokerMessage): void => {
    this.all.push({ channel, message });
  };

  /** Messages received on `channel`, in order. */
  on(channel: string): BrokerMessage[] {
    return this.all.filter((r) => r.channel === channel).map((r) => r.message);
  }

  /** Waits until `channel` has received at least `count` messages. */
  async wait(channel: string, count: number, timeoutMs = 5000): Promise<BrokerMessage[]> {
    return eventually(() => this.on(channel), (m) => m.length >= count, `${count} messages on ${channel} (have ${this.on(channel).length})`, timeoutMs);
  }
}

/** A publication as the node sends it: its position and its serialised `message` frame. */
export function publication(channel: string, offset: number, data: unknown = { n: offset }, epoch = 'e-Az_09'): BrokerMessage {
  const frame = JSON.stringify({ type: 'message', channel, epoch, offset, from: 'alice', topic: 'chat', data, ts: 1_732_370_000_000 + offset });
  return { kind: 'message', epoch, offset, frame };
}

const offsets = (messages: BrokerMessage[]): number[] => messages.map((m) => (m.kind === 'message' ? m.offset : -1));

/** Starts both brokers of a pair with recorders. */
export async function startPair(pair: BrokerPair): Promise<{ a: Received; b: Received }> {
  const a = new Received();
  const b = new Received();
  await pair.a.start(a.handler);
  await pair.b.start(b.handler);
  return { a, b };
}

/** Registers the broker contract tests (call inside a `describe`). */
export function brokerContract(makePair: () => Promise<BrokerPair>): void {
  async function withPair(fn: (pair: BrokerPair, got: { a: Received; b: Received }) => Promise<void>): Promise<void> {
    const pair = await makePair();
    try {
      await fn(pair, await startPair(pair));
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
      const messages = await got.b.wait('group:ops', 1001, 10_000);
      assert.deepEqual(offsets(messages), Array.from({ length: 1001 }, (_, i) => i + 1));
      assert.deepEqual(messages[0], publication('group:ops', 1), 'the message arrives as it was published');
      assert.deepEqual(got.a.all, [], 'the publishing node did not subscribe, so it receives nothing');
    }));

  it('does not deliver a channel the node has not subscribed to', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      await pair.a.publish('group:dev', publication('group:dev', 1));
      await pair.a.publish('group:ops', publication('group:ops', 1));
      await got.b.wait('group:ops', 1);
      assert.deepEqual(got.b.all.map((r) => r.channel), ['group:ops']);
    }));

  it('delivers to the publishing node too when it subscribed', () =>
    withPair(async (pair, got) => {
      await pair.a.subscribe('group:ops');
      await pair.b.subscribe('group:ops');
      await pair.a.publish('group:ops', publication('group:ops', 7));
      assert.deepEqual(await got.a.wait('group:ops', 1), [publication('group:ops', 7)]);
      assert.deepEqual(await got.b.wait('group:ops', 1), [publication('group:ops', 7)]);
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
      const channel = 'group:a|b:{ch:x}';
      await pair.b.subscribe(channel);
      const tricky = publication(channel, 3, { text: 'pipes | and\nnewlines, emoji 🎉, quotes "x", nul \u0000' });
      await pair.a.publish(channel, tricky);
      assert.deepEqual(await got.b.wait(channel, 1), [tricky]);
    }));

  it('round-trips presence events', () =>
    withPair(async (pair, got) => {
      await pair.b.subscribe('group:ops');
      const join: BrokerMessage = { kind: 'presence', channel: 'group:ops', event: 'join', user: 'carol|x:1', ts: 1_732_370_000_123 };
      const leave: BrokerMessage = { kind: 'presence', channel: 'group:ops', event: 'leave', user: 'dave', ts: 1_732_370_000_456 };
      await pair.a.publish('group:ops', join);
      await pair.a.publish('group:ops', leave);
      assert.deepEqual(await got.b.wait('group:ops', 2), [join, leave]);
    }));

  it('round-trips disconnect orders, including users and reasons with separators', () =>
    withPair(async (pair, got) => {
      const channel = 'user:eve|42';
      await pair.b.subscribe(channel);
      const kick: BrokerMessage = { kind: 'disconnect', user: 'eve|42', code: 4003, reason: 'kicked | by 4003|admin ✓\n' };
      const empty: BrokerMessage = { kind: 'disconnect', user: 'eve|42', code: 1000, reason: '' };
      await pair.a.publish(channel, kick);
      await pair.a.publish(channel, empty);
      assert.deepEqual(await got.b.wait(channel, 2), [kick, empty]);
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
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got.b.all, []);
    }));
}
