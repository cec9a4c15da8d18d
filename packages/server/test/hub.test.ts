/**
 * The Hub on its own, against a recording fake Broker: it reference-counts broker subscriptions
 * per channel (one subscribe for the first member, one unsubscribe after the last leaves) and fans
 * out what the broker delivers to the channel's local members.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Hub, type HubMember } from '../src/hub.js';
import { NodeMetrics } from '../src/metrics.js';
import type { Broker, BrokerHandler, BrokerMessage } from '../src/broker/broker.js';

/**
 * A Broker that records every subscribe and unsubscribe and, like a real one, delivers only the
 * channels it is subscribed to. Deliveries go to the hub's `onBrokerMessage` (wired by `setup`),
 * whatever shape the handler given to `start` has. `failNextSubscribe` makes the next subscribe
 * reject; `holdUnsubscribes` keeps unsubscribes in flight until released.
 */
class FakeBroker implements Broker {
  readonly calls: string[] = [];
  readonly subscribed = new Set<string>();
  readonly ready = true;
  sink: ((channel: string, message: BrokerMessage) => void) | undefined;
  private failures: Error[] = [];
  private gate: Promise<void> | undefined;

  async start(_handler: BrokerHandler): Promise<void> {}

  async subscribe(channel: string): Promise<void> {
    this.calls.push(`subscribe ${channel}`);
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.subscribed.add(channel);
  }

  async unsubscribe(channel: string): Promise<void> {
    this.calls.push(`unsubscribe ${channel}`);
    await this.gate;
    this.subscribed.delete(channel);
  }

  async publish(channel: string, message: BrokerMessage): Promise<void> {
    this.deliver(channel, message);
  }

  async close(): Promise<void> {
    this.subscribed.clear();
  }

  /** What the broker would hand the node for `channel`; dropped unless subscribed. */
  deliver(channel: string, message: BrokerMessage): void {
    if (this.subscribed.has(channel)) this.sink?.(channel, message);
  }

  failNextSubscribe(error: Error): void {
    this.failures.push(error);
  }

  /** Unsubscribes wait until the returned function is called. */
  holdUnsubscribes(): () => void {
    let release!: () => void;
    this.gate = new Promise((resolve) => (release = resolve));
    return () => {
      this.gate = undefined;
      release();
    };
  }
}

/** One publication as a member got it. */
interface Delivery {
  channel: string;
  offset: number;
  epoch: string;
  frame: Buffer;
}

/** A member that records what the hub hands it; `onClose` runs inside `close` (a session leaves its channels there). */
class FakeMember implements HubMember {
  readonly delivered: Delivery[] = [];
  readonly raw: (string | Buffer)[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  readonly caughtUp: { channel: string; offset: number }[] = [];
  /** Throws on every delivery (a session bug the hub must contain). */
  throws = false;

  constructor(
    readonly user: string,
    private readonly onClose?: (member: FakeMember) => void,
  ) {}

  deliver(channel: string, message: Extract<BrokerMessage, { kind: 'message' }>): void {
    if (this.throws) throw new Error('member bug');
    this.delivered.push({ channel, offset: message.offset, epoch: message.epoch, frame: message.frame });
  }

  sendRaw(frame: string | Buffer): void {
    this.raw.push(frame);
  }

  catchUp(channel: string, latest: { epoch: string; offset: number }): void {
    this.caughtUp.push({ channel, offset: latest.offset });
  }

  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.onClose?.(this);
  }
}

function setup(lingerMs = 0): { hub: Hub; broker: FakeBroker; metrics: NodeMetrics } {
  const broker = new FakeBroker();
  const metrics = new NodeMetrics('t', false);
  const hub = new Hub(broker, metrics, pino({ level: 'silent' }), lingerMs);
  broker.sink = hub.onBrokerMessage;
  return { hub, broker, metrics };
}

/** Lets the hub's queued broker operations run (the fake broker settles within microtasks). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A publication as the broker carries it, its message frame already encoded to UTF-8 bytes. The
 * broker interface is moving from a string frame to bytes (the hub takes either); the cast keeps
 * this file compiling against both.
 */
const message = (offset: number, text = `{"type":"message","offset":${offset}}`): BrokerMessage => ({
  kind: 'message',
  epoch: 'e1',
  offset,
  frame: Buffer.from(text) as Extract<BrokerMessage, { kind: 'message' }>['frame'] & Buffer,
});

let probes = 0;

/**
 * Which of `members` the hub hands a publication on `channel` now, straight from the broker's
 * handler (whatever the broker's subscriptions): the hub's members of that channel, in order.
 */
function reached(hub: Hub, channel: string, members: FakeMember[]): FakeMember[] {
  const offset = 1_000_000 + ++probes;
  hub.onBrokerMessage(channel, message(offset));
  return members.filter((m) => m.delivered.some((d) => d.channel === channel && d.offset === offset));
}

describe('Hub', () => {
  describe('broker subscriptions', () => {
    it('subscribes the broker once for two members of a channel, even when they join at the same time', async () => {
      const { hub, broker } = setup();
      const [a, b, c] = [new FakeMember('a'), new FakeMember('b'), new FakeMember('c')];
      await Promise.all([hub.add('group:ops', a), hub.add('group:ops', b)]);
      await hub.add('group:ops', c);
      assert.deepEqual(broker.calls, ['subscribe group:ops']);
      assert.deepEqual(reached(hub, 'group:ops', [a, b, c]), [a, b, c]);
    });

    it('unsubscribes once, when the last member leaves', async () => {
      const { hub, broker } = setup();
      const [a, b] = [new FakeMember('a'), new FakeMember('b')];
      await hub.add('group:ops', a);
      await hub.add('group:ops', b);

      hub.remove('group:ops', a);
      await settle();
      assert.deepEqual(broker.calls, ['subscribe group:ops'], 'a member is left: still subscribed');

      hub.remove('group:ops', b);
      hub.remove('group:ops', b); // a second remove of the same member changes nothing
      await settle();
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'unsubscribe group:ops']);
      assert.deepEqual(broker.subscribed, new Set());
      assert.deepEqual(reached(hub, 'group:ops', [a, b]), [], 'the channel has no members left');
    });

    it('ends subscribed after subscribe, unsubscribe and subscribe again', async () => {
      const { hub, broker } = setup();
      const a = new FakeMember('a');
      await hub.add('group:ops', a);
      hub.remove('group:ops', a);
      await settle();
      await hub.add('group:ops', a);
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'unsubscribe group:ops', 'subscribe group:ops']);
      assert.ok(broker.subscribed.has('group:ops'));
      broker.deliver('group:ops', message(1));
      assert.equal(a.delivered.length, 1, 'the channel is delivered again');
    });

    it('ends subscribed when a member joins while the unsubscribe is still in flight', async () => {
      const { hub, broker } = setup();
      const [a, b] = [new FakeMember('a'), new FakeMember('b')];
      await hub.add('group:ops', a);
      const release = broker.holdUnsubscribes();
      hub.remove('group:ops', a);
      await settle();
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'unsubscribe group:ops'], 'the unsubscribe has started');

      let added = false;
      const adding = hub.add('group:ops', b).then(() => (added = true));
      await settle();
      assert.equal(added, false, 'add waits for the unsubscribe before it subscribes again');
      release();
      await adding;
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'unsubscribe group:ops', 'subscribe group:ops']);
      assert.ok(broker.subscribed.has('group:ops'), 'the broker is subscribed once add resolves');
      broker.deliver('group:ops', message(1));
      assert.deepEqual(
        b.delivered.map((d) => d.offset),
        [1],
      );
      assert.deepEqual(a.delivered, [], 'a left before');
    });

    it('rejects add when the broker subscribe fails, and subscribes on the next add', async () => {
      const { hub, broker } = setup();
      const [a, b] = [new FakeMember('a'), new FakeMember('b')];
      const failure = new Error('broker down');
      broker.failNextSubscribe(failure);
      await assert.rejects(hub.add('group:ops', a), (err) => err === failure);
      assert.equal(broker.subscribed.has('group:ops'), false);
      // What a session does when joining fails (Session.attach → detach): it leaves the channel.
      hub.remove('group:ops', a);

      await hub.add('group:ops', b);
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'subscribe group:ops'], 'the subscribe was tried again');
      assert.ok(broker.subscribed.has('group:ops'));
      broker.deliver('group:ops', message(1));
      assert.deepEqual(
        b.delivered.map((d) => d.offset),
        [1],
        'the channel is delivered once subscribed',
      );
      assert.deepEqual(a.delivered, [], 'a left after its failed add');
    });

    it('keeps each channel apart', async () => {
      const { hub, broker } = setup();
      const a = new FakeMember('a');
      await hub.add('group:ops', a);
      await hub.add('user:a', a);
      hub.remove('group:ops', a);
      await settle();
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'subscribe user:a', 'unsubscribe group:ops']);
      assert.ok(broker.subscribed.has('user:a'));
      assert.deepEqual(reached(hub, 'user:a', [a]), [a]);
      assert.deepEqual(reached(hub, 'group:ops', [a]), []);
    });
  });

  describe('lingering subscriptions (a channel kept lingerMs after its last member left)', () => {
    /** Resolves once `check` holds, polling; rejects after 5 s. */
    async function until(check: () => boolean, what: string): Promise<void> {
      for (const end = Date.now() + 5000; !check();) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }

    it('keeps the channel subscribed for a member that comes back within the linger: no unsubscribe, no second subscribe', async () => {
      const { hub, broker } = setup(60_000);
      const first = new FakeMember('a');
      await hub.add('user:a', first);
      hub.remove('user:a', first);
      await settle();
      assert.deepEqual(broker.calls, ['subscribe user:a'], 'still subscribed after the last member left');
      assert.equal(hub.size, 1, 'the lingering channel counts as received');
      broker.deliver('user:a', message(1));
      assert.deepEqual(first.delivered, [], 'a member that left gets nothing');

      const back = new FakeMember('a');
      await hub.add('user:a', back);
      broker.deliver('user:a', message(2));
      assert.deepEqual(
        back.delivered.map((d) => d.offset),
        [2],
      );
      assert.deepEqual(broker.calls, ['subscribe user:a']);
      hub.stop();
    });

    it('drops the subscription and the channel once the linger has passed without a member', async () => {
      const { hub, broker, metrics } = setup(30);
      const [a, b] = [new FakeMember('a'), new FakeMember('b')];
      await hub.add('group:ops', a);
      await hub.add('group:ops', b);
      hub.remove('group:ops', a);
      hub.remove('group:ops', b);
      await until(() => broker.calls.length === 2, 'the unsubscribe');
      assert.deepEqual(broker.calls, ['subscribe group:ops', 'unsubscribe group:ops']);
      await until(() => hub.size === 0, 'the channel to go');
      assert.equal((await metrics.localChannels.get()).values[0]?.value, 0);
    });

    it('starts the linger again each time the channel is left: one unsubscribe, after the last leave', async () => {
      const { hub, broker } = setup(40);
      const a = new FakeMember('a');
      await hub.add('user:a', a);
      for (let i = 0; i < 3; i++) {
        hub.remove('user:a', a);
        await new Promise((resolve) => setTimeout(resolve, 10));
        await hub.add('user:a', a);
      }
      hub.remove('user:a', a);
      await until(() => broker.calls.length === 2, 'the unsubscribe');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(broker.calls, ['subscribe user:a', 'unsubscribe user:a'], 'the earlier lingers were cancelled');
    });

    it('subscribes again for a member that comes after the linger ran out', async () => {
      const { hub, broker } = setup(20);
      const a = new FakeMember('a');
      await hub.add('user:a', a);
      hub.remove('user:a', a);
      await until(() => hub.size === 0, 'the channel to go');
      await hub.add('user:a', a);
      assert.deepEqual(broker.calls, ['subscribe user:a', 'unsubscribe user:a', 'subscribe user:a']);
      assert.deepEqual(reached(hub, 'user:a', [a]), [a]);
    });

    it('stops its timers when the node stops', async () => {
      const { hub, broker } = setup(20);
      const a = new FakeMember('a');
      await hub.add('user:a', a);
      hub.remove('user:a', a);
      hub.stop();
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.deepEqual(broker.calls, ['subscribe user:a'], 'closing the broker drops the subscription; the hub sends nothing after stop');
    });
  });

  describe('catch-up after the broker link came back', () => {
    it('hands each channel with members its latest position, and goes on past a channel whose read fails', async () => {
      const { hub, metrics } = setup(60_000);
      const [a, b, gone] = [new FakeMember('a'), new FakeMember('b'), new FakeMember('c')];
      await hub.add('group:ops', a);
      await hub.add('group:ops', b);
      await hub.add('user:a', a);
      await hub.add('user:c', gone);
      hub.remove('user:c', gone); // lingering: no member to catch up
      const read: string[] = [];
      await hub.catchUp(async (channel) => {
        read.push(channel);
        if (channel === 'user:a') throw new Error('history down');
        return { epoch: 'e1', offset: 7 };
      });
      assert.deepEqual(read.sort(), ['group:ops', 'user:a']);
      assert.deepEqual(a.caughtUp, [{ channel: 'group:ops', offset: 7 }]);
      assert.deepEqual(b.caughtUp, [{ channel: 'group:ops', offset: 7 }]);
      assert.deepEqual(gone.caughtUp, []);
      assert.equal((await metrics.engineErrors.get()).values.find((v) => v.labels.component === 'history')?.value, 1);
      hub.stop();
    });
  });

  describe('fan-out', () => {
    it('hands every member of the channel the same Buffer of the frame, and no one else', async () => {
      const { hub, broker } = setup();
      const [a, b, other] = [new FakeMember('a'), new FakeMember('b'), new FakeMember('c')];
      await hub.add('group:ops', a);
      await hub.add('group:ops', b);
      await hub.add('group:dev', other);

      const frame = '{"type":"message","channel":"group:ops","data":"héllo"}';
      broker.deliver('group:ops', message(7, frame));
      for (const member of [a, b]) {
        assert.equal(member.delivered.length, 1);
        const [got] = member.delivered;
        assert.deepEqual({ ...got, frame: undefined }, { channel: 'group:ops', offset: 7, epoch: 'e1', frame: undefined });
        assert.ok(Buffer.isBuffer(got!.frame));
        assert.equal(got!.frame.toString('utf8'), frame, 'UTF-8 bytes of the frame');
      }
      assert.equal(a.delivered[0]!.frame, b.delivered[0]!.frame, 'one Buffer for all members, not one per member');
      assert.deepEqual(other.delivered, []);
      assert.deepEqual([a.raw, b.raw], [[], []], 'a message goes through deliver, not sendRaw');
    });

    it('ignores a delivery for a channel without local members', async () => {
      const { hub } = setup();
      assert.doesNotThrow(() => hub.onBrokerMessage('group:nobody', message(1)));
    });

    it('writes a presence event to every member through sendRaw', async () => {
      const { hub, broker } = setup();
      const [a, b] = [new FakeMember('a'), new FakeMember('b')];
      await hub.add('group:ops', a);
      await hub.add('group:ops', b);
      broker.deliver('group:ops', { kind: 'presence', channel: 'group:ops', event: 'join', user: 'carol', ts: 1_732_370_000_000 });
      for (const member of [a, b]) {
        assert.equal(member.raw.length, 1);
        assert.deepEqual(JSON.parse(member.raw[0]!.toString()), {
          type: 'presence',
          channel: 'group:ops',
          event: 'join',
          user: 'carol',
          ts: 1_732_370_000_000,
        });
        assert.deepEqual(member.delivered, [], 'presence is not a publication');
      }
    });

    it("closes only the named user's members on a disconnect", async () => {
      const { hub, broker } = setup();
      // Like a session, a closed member leaves its channels at once (while the hub is iterating).
      const leave = (member: FakeMember) => hub.remove('user:alice', member);
      const [tab1, tab2, bob] = [new FakeMember('alice', leave), new FakeMember('alice', leave), new FakeMember('bob', leave)];
      for (const member of [tab1, bob, tab2]) await hub.add('user:alice', member);

      broker.deliver('user:alice', { kind: 'disconnect', user: 'alice', code: 4003, reason: 'disconnected by the server' });
      assert.deepEqual(tab1.closes, [{ code: 4003, reason: 'disconnected by the server' }]);
      assert.deepEqual(tab2.closes, [{ code: 4003, reason: 'disconnected by the server' }]);
      assert.deepEqual(bob.closes, [], 'bob listens on user:alice but is not alice');
      assert.deepEqual(reached(hub, 'user:alice', [tab1, tab2, bob]), [bob], 'the closed tabs left the channel');
    });

    it('keeps delivering to the other members when one throws, and counts the failure', async () => {
      const { hub, broker, metrics } = setup();
      const [a, bad, c] = [new FakeMember('a'), new FakeMember('bad'), new FakeMember('c')];
      bad.throws = true;
      for (const member of [a, bad, c]) await hub.add('group:ops', member);
      assert.doesNotThrow(() => broker.deliver('group:ops', message(1)));
      assert.deepEqual([a.delivered.length, c.delivered.length], [1, 1]);
      assert.match(await metrics.registry.metrics(), /switchboard_engine_errors_total\{component="hub",node="t"\} 1/);
    });
  });
});
