/**
 * RedisHistory beyond the shared contract: what only a Redis store has (lost keys, the append
 * that also publishes — its Lua-built payload byte for byte the codec's — key layout, TTLs,
 * trimming, and failing fast when Redis is unreachable).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { decode, encode } from '../src/broker/codec.js';
import { channelTag, clusterAllName } from '../src/redis/keys.js';
import { RedisHistory, type RedisHistoryOptions } from '../src/history/redis-history.js';
import { messageFrame, type Publication, type PublicationInput } from '../src/publication.js';
import { RedisFixture, redisSkip } from './redis-helpers.js';

/** Waits up to 5 s for `got` to hold `count` payloads. */
async function received(got: Buffer[], count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (got.length < count) {
    if (Date.now() > deadline) assert.fail(`expected ${count} pub/sub messages, got ${got.length}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function input(n: unknown, ts = Date.now()): PublicationInput {
  return { from: 'alice', topic: 'chat', data: n, ts };
}

describe('RedisHistory', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  let n = 0;

  /** A history over a fresh prefix, and a client to look at its keys. */
  async function open(options: Partial<RedisHistoryOptions> = {}): Promise<{ h: RedisHistory; r: Redis; prefix: string }> {
    const r = await redis.client();
    const prefix = `${redis.prefix}${n++}:`;
    return { h: new RedisHistory({ redis: r, prefix, ...options }), r, prefix };
  }

  /** A subscriber client collecting what arrives on `name`. */
  async function listen(name: string): Promise<Buffer[]> {
    const sub = await redis.client();
    const got: Buffer[] = [];
    sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
      if (channel.toString() === name) got.push(payload);
    });
    await sub.subscribe(name);
    return got;
  }

  it("starts a new epoch at offset 0 when Redis loses the channel's keys", async () => {
    const { h, r, prefix } = await open();
    for (let i = 1; i <= 3; i++) await h.append('group:a', input(i));
    const before = await h.position('group:a');
    const tag = channelTag(prefix, 'group:a');
    assert.equal(await r.del(`${tag}:meta`, `${tag}:stream`), 2, 'the keys are where the brief says');
    const after = await h.position('group:a');
    assert.equal(after.offset, 0);
    assert.notEqual(after.epoch, before.epoch, 'a client resuming from the old epoch is told recovered:false');
    const next = await h.append('group:a', input(4));
    assert.deepEqual({ epoch: next.epoch, offset: next.offset }, { epoch: after.epoch, offset: 1 });
  });

  it('starts a new epoch and drops stale entries when only the meta hash is lost', async () => {
    const { h, r, prefix } = await open();
    for (let i = 1; i <= 3; i++) await h.append('group:a', input(i));
    const old = await h.position('group:a');
    await r.del(`${channelTag(prefix, 'group:a')}:meta`);
    const page = await h.read('group:a', 0, 10);
    assert.notEqual(page.epoch, old.epoch);
    assert.deepEqual(
      { offset: page.offset, firstOffset: page.firstOffset, publications: page.publications },
      { offset: 0, firstOffset: 1, publications: [] },
      'old-epoch entries are not served under the new epoch',
    );
    const next = await h.append('group:a', input(9));
    assert.deepEqual((await h.read('group:a', 0, 10)).publications, [next]);
  });

  it('appends and publishes in one step: the payload is byte for byte what the codec encodes', async () => {
    const { h, prefix } = await open();
    const name = channelTag(prefix, 'group:ops');
    const got = await listen(name);
    const inputs: PublicationInput[] = [
      { from: null, topic: 'sys', data: null, ts: Date.now() },
      { from: 'a"b\\c|d', topic: 't\u2028</script>', data: { text: 'héllo 👋', n: [1e21, -0.5, 0], deep: { a: [{}] } }, ts: Date.now() },
      { from: 'bob', topic: 'x', data: 'm9:group:ops|1|e|{"type":"message"}', ts: Date.now() },
    ];
    const pubs: Publication[] = [];
    for (const i of inputs) {
      const result = await h.appendAndPublish('group:ops', i, undefined, [name]);
      assert.ok(!result.duplicate);
      pubs.push(result.pub);
    }
    await received(got, pubs.length);
    pubs.forEach((pub, i) => {
      const expected = encode('group:ops', {
        kind: 'message',
        epoch: pub.epoch,
        offset: pub.offset,
        frame: Buffer.from(messageFrame(pub)),
      });
      assert.deepEqual(got[i], expected);
      assert.equal(decode(got[i]!).channel, 'group:ops');
    });
    assert.deepEqual((await h.read('group:ops', 0, 10)).publications, pubs, 'and kept in history');
  });

  it('publishes to every name it is given, the same payload to each', async () => {
    const { h, prefix } = await open();
    const names = [clusterAllName(prefix), channelTag(prefix, 'user:a|b')];
    const [all, own] = await Promise.all(names.map((name) => listen(name)));
    const { pub } = (await h.appendAndPublish('user:a|b', input({ k: 'v' }), undefined, names)) as { pub: Publication };
    await received(all!, 1);
    await received(own!, 1);
    assert.deepEqual(all![0], own![0]);
    assert.equal(decode(all![0]!).channel, 'user:a|b');
    assert.equal(pub.offset, 1);
  });

  it('appends every publication of one event-loop turn in one script call, offsets dense per channel, in call order', async () => {
    const { h, r } = await open();
    const sent: string[] = [];
    const original = r.sendCommand.bind(r);
    r.sendCommand = ((command: { name: string }) => {
      sent.push(command.name);
      return original(command as never);
    }) as typeof r.sendCommand;
    try {
      const appends = Array.from({ length: 120 }, (_, i) => h.append(`group:c${i % 3}`, input(i)));
      const pubs = await Promise.all(appends);
      assert.equal(sent.filter((c) => c === 'evalsha' || c === 'eval').length, 1, `one script call, got ${sent.join(' ')}`);
      for (let c = 0; c < 3; c++) {
        const mine = pubs.filter((p) => p.channel === `group:c${c}`);
        assert.deepEqual(
          mine.map((p) => p.offset),
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        assert.deepEqual(
          mine.map((p) => p.data),
          Array.from({ length: 40 }, (_, i) => 3 * i + c),
        );
      }
      // A publication alone in a later turn goes in a call of its own.
      sent.length = 0;
      const alone = await h.append('group:c0', input('alone'));
      assert.equal(alone.offset, 41);
      assert.deepEqual(sent.filter((c) => c === 'evalsha' || c === 'eval').length, 1);
    } finally {
      r.sendCommand = original;
    }
  });

  it('publishes nothing on a plain append', async () => {
    const { h, prefix } = await open();
    const got = await listen(channelTag(prefix, 'group:a'));
    await h.append('group:a', input(1));
    await h.append('group:marker', input(1));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(got, []);
  });

  it('stores an idempotency key for the window and neither appends nor publishes a repeat', async () => {
    const { h, r, prefix } = await open({ idempotencyWindowMs: 60_000 });
    const name = channelTag(prefix, 'group:a');
    const got = await listen(name);
    const first = await h.appendAndPublish('group:a', input(1), 'key|1', [name]);
    assert.ok(!first.duplicate);
    const repeat = await h.appendAndPublish('group:a', input(2), 'key|1', [name]);
    assert.deepEqual(repeat, { duplicate: true, position: { epoch: first.pub.epoch, offset: 1 } });
    const ttl = await r.pttl(`${channelTag(prefix, 'group:a')}:idem:key|1`);
    assert.ok(ttl > 50_000 && ttl <= 60_000, `key TTL ${ttl} ms within the window`);
    await h.appendAndPublish('group:a', input(3), undefined, [name]);
    await received(got, 2);
    assert.deepEqual(
      got.map((p) => (decode(p).message as { offset: number }).offset),
      [1, 2],
      'the repeat was not published',
    );
  });

  it('bounds the stream with MAXLEN and sets the key TTLs on append', async () => {
    const { h, r, prefix } = await open({ historySize: 5, historyTtlMs: 30_000, historyMetaTtlMs: 3_600_000 });
    for (let i = 0; i < 25; i++) await h.append('group:a', input(i));
    const tag = channelTag(prefix, 'group:a');
    assert.equal(await r.xlen(`${tag}:stream`), 5);
    const ids = (await r.xrange(`${tag}:stream`, '-', '+')).map(([id]) => id);
    assert.deepEqual(ids, ['21-0', '22-0', '23-0', '24-0', '25-0'], 'entry id = offset');
    const streamTtl = await r.pttl(`${tag}:stream`);
    const metaTtl = await r.pttl(`${tag}:meta`);
    // Each TTL is a refresh period (a tenth of the history TTL, 10 s at most) longer than configured.
    assert.ok(streamTtl > 25_000 && streamTtl <= 33_000, `stream TTL ${streamTtl}`);
    assert.ok(metaTtl > 3_500_000 && metaTtl <= 3_603_000, `meta TTL ${metaTtl}`);
  });

  it('refreshes the TTLs once per channel per period, not on every append, and at once for a fresh epoch', async () => {
    // historyTtlMs 2 s: the period is 200 ms.
    const { h, r, prefix } = await open({ historyTtlMs: 2000 });
    const tag = channelTag(prefix, 'group:a');
    await h.append('group:a', input(1));
    assert.ok((await r.pttl(`${tag}:stream`)) > 2000, 'set by the first append');
    await r.pexpire(`${tag}:stream`, 60_000);
    await h.append('group:a', input(2));
    assert.ok((await r.pttl(`${tag}:stream`)) > 50_000, 'not set again within the period');
    await sleep(250);
    await h.append('group:a', input(3));
    const ttl = await r.pttl(`${tag}:stream`);
    assert.ok(ttl > 1500 && ttl <= 2200, `refreshed in the next period: ${ttl}`);
    // Redis lost the channel (a flush): the next append starts a fresh epoch and sets its TTLs even within the period.
    await r.del(`${tag}:stream`, `${tag}:meta`);
    await h.append('group:a', input(4));
    assert.ok((await r.pttl(`${tag}:stream`)) > 1500, 'a fresh stream has its TTL');
    assert.ok((await r.pttl(`${tag}:meta`)) > 1500, 'a fresh meta has its TTL');
  });

  it('keeps the meta hash at least as long as the stream when historyMetaTtlMs is shorter', async () => {
    const { h, r, prefix } = await open({ historyTtlMs: 120_000, historyMetaTtlMs: 1_000 });
    await h.append('group:a', input(1));
    const metaTtl = await r.pttl(`${channelTag(prefix, 'group:a')}:meta`);
    assert.ok(metaTtl > 110_000, `meta TTL ${metaTtl} follows historyTtlMs`);
  });

  it('writes no stream with historySize 0', async () => {
    const { h, r, prefix } = await open({ historySize: 0 });
    await h.append('group:a', input(1));
    assert.equal(await r.exists(`${channelTag(prefix, 'group:a')}:stream`), 0);
  });

  it('drops entries older than historyTtlMs by their ts on read and trims them from the stream', async () => {
    let now = 1_000_000;
    const { h, r, prefix } = await open({ historyTtlMs: 10_000, now: () => now });
    const stream = `${channelTag(prefix, 'group:a')}:stream`;
    for (let i = 0; i < 150; i++) await h.append('group:a', input(i, now)); // more than one scan batch
    now += 6_000;
    const late = await h.append('group:a', input('late', now));
    now += 5_000; // the first 150 are 11 s old, the last 5 s
    const page = await h.read('group:a', 0, 100);
    assert.deepEqual(page.publications, [late]);
    assert.deepEqual({ offset: page.offset, firstOffset: page.firstOffset }, { offset: 151, firstOffset: 151 });
    assert.equal(await r.xlen(stream), 1, 'the expired head was trimmed');
    now += 6_000;
    const empty = await h.read('group:a', 0, 100);
    assert.deepEqual(
      { epoch: empty.epoch, offset: empty.offset, firstOffset: empty.firstOffset, n: empty.publications.length },
      { epoch: late.epoch, offset: 151, firstOffset: 152, n: 0 },
    );
    assert.equal(await r.exists(stream), 0, 'a fully expired stream is deleted');
  });

  it('is not ready after close, which leaves the injected client open', async () => {
    const { h, r } = await open();
    assert.equal(h.ready, true);
    await h.close();
    assert.equal(h.ready, false);
    assert.equal(await r.ping(), 'PONG', 'close() does not quit the injected client');
  });

  it('rejects within a second, and is not ready, when Redis is unreachable', async () => {
    // The engine factory's settings, pointed at a port nothing listens on.
    const client = new Redis({ host: '127.0.0.1', port: 1, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 1000 });
    client.on('error', () => undefined);
    try {
      const h = new RedisHistory({ redis: client, prefix: `${redis.prefix}dead:` });
      assert.equal(h.ready, false);
      for (const call of [
        () => h.append('group:a', input(1)),
        () => h.appendOnce('group:a', input(1), 'k'),
        () => h.position('group:a'),
        () => h.read('group:a', 0, 10),
      ]) {
        const started = Date.now();
        await assert.rejects(call());
        assert.ok(Date.now() - started < 1000, `rejected after ${Date.now() - started} ms`);
      }
    } finally {
      client.disconnect();
    }
  });
});
