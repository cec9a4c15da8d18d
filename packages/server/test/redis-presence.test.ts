/**
 * RedisPresenceStore beyond the shared contract: leases. Entries expire unless refreshed, `reap`
 * removes expired ones and names each user whose last session went exactly once cluster-wide, and
 * joins/leaves alternate whichever node adds, removes or reaps. Most tests drive a shared fake
 * clock (the `now` option) so that nothing waits for a real lease.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { PresenceEntry, PresenceLeave } from '../src/presence/presence-store.js';
import { RedisPresenceStore, type RedisPresenceStoreOptions } from '../src/presence/redis-presence-store.js';
import { member } from './contracts/presence-contract.js';
import { keysWithPrefix, RedisFixture, redisSkip } from './redis-helpers.js';

const TTL = 10_000;
const sortLeaves = (leaves: PresenceLeave[]): string[] => leaves.map((l) => `${l.channel} ${l.user}`).sort();

describe('RedisPresenceStore', { skip: redisSkip }, () => {
  const redis = new RedisFixture();
  after(() => redis.cleanup());
  let n = 0;

  /** `count` stores (nodes) on their own clients over a fresh prefix, sharing a fake clock. */
  async function cluster(count = 1, options: Partial<RedisPresenceStoreOptions> = {}) {
    const prefix = `${redis.prefix}${n++}:`;
    const clock = {
      now: 1_000_000,
      advance(ms: number) {
        clock.now += ms;
      },
    };
    const stores: RedisPresenceStore[] = [];
    for (let i = 0; i < count; i++)
      stores.push(new RedisPresenceStore({ redis: await redis.client(), prefix, presenceTtlMs: TTL, now: () => clock.now, ...options }));
    return { stores, clock, prefix, store: stores[0]! };
  }

  it('drops expired leases from list() and sessions()', async () => {
    const { store, clock } = await cluster();
    await store.add('group:ops', member('alice', 's1', 'n1', 7));
    await store.add('user:alice', member('alice', 's1', 'n1', 7));
    clock.advance(TTL - 1);
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }], 'live until the lease ends');
    assert.deepEqual(await store.sessions('alice'), [{ session: 's1', node: 'n1', since: 7 }]);
    clock.advance(1);
    assert.deepEqual(await store.list('group:ops'), []);
    assert.deepEqual(await store.sessions('alice'), []);
  });

  it('expires leases by the real clock by default', async () => {
    const { store } = await cluster(1, { presenceTtlMs: 200, now: undefined });
    await store.add('group:ops', member('alice', 's1'));
    assert.equal((await store.list('group:ops')).length, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await store.list('group:ops'), []);
    assert.deepEqual(await store.reap(), [{ channel: 'group:ops', user: 'alice' }]);
  });

  it('counts only live sessions and nodes of a user some of whose leases expired', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    await a!.add('group:ops', member('alice', 's1', 'n1'));
    clock.advance(TTL / 2);
    await b!.add('group:ops', member('alice', 's2', 'n2'));
    clock.advance(TTL / 2); // n1's lease ended, n2's has half to go
    assert.deepEqual(await a!.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n2'] }]);
    assert.deepEqual(await b!.reap(), [], 'alice still has a live session: no leave');
  });

  it('keeps refreshed sessions alive past their first lease', async () => {
    const { store, clock } = await cluster();
    const entries: PresenceEntry[] = [
      { channel: 'group:ops', member: member('alice', 's1') },
      { channel: 'user:alice', member: member('alice', 's1') },
    ];
    for (const e of entries) await store.add(e.channel, e.member);
    for (let i = 0; i < 5; i++) {
      clock.advance(TTL * 0.8);
      assert.deepEqual(await store.refresh(entries), [], `refresh ${i}: nothing was lost`);
      assert.deepEqual(await store.reap(), [], `refresh ${i}: nothing to reap`);
    }
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }]);
    assert.equal((await store.sessions('alice')).length, 1);
  });

  it('reaps each expired user once, with the channel, and leaves live users alone', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    await a!.add('group:ops', member('alice', 's1', 'n1'));
    await a!.add('group:ops', member('alice', 's2', 'n1'));
    await a!.add('group:dev', member('alice', 's1', 'n1'));
    await a!.add('group:ops', member('bob', 's3', 'n1'));
    clock.advance(TTL / 2);
    await b!.add('group:ops', member('carol', 's4', 'n2'));
    clock.advance(TTL / 2); // node n1 stopped refreshing a lease ago
    assert.deepEqual(sortLeaves(await b!.reap()), ['group:dev alice', 'group:ops alice', 'group:ops bob']);
    assert.deepEqual(await b!.reap(), [], 'a second reap finds nothing');
    assert.deepEqual(await a!.reap(), [], 'nor does another node');
    assert.deepEqual(await b!.list('group:ops'), [{ user: 'carol', sessions: 1, nodes: ['n2'] }]);
    clock.advance(TTL);
    assert.deepEqual(await a!.reap(), [{ channel: 'group:ops', user: 'carol' }]);
  });

  it('returns each expired user exactly once when two nodes reap at the same time', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    const expected: string[] = [];
    for (let c = 0; c < 30; c++) {
      for (let u = 0; u < 5; u++) {
        await a!.add(`group:g${c}`, member(`u${u}`, `s${u}a`, 'n1'));
        await a!.add(`group:g${c}`, member(`u${u}`, `s${u}b`, 'n1')); // two tabs: still one leave
        expected.push(`group:g${c} u${u}`);
      }
    }
    clock.advance(TTL);
    const [fromA, fromB] = await Promise.all([a!.reap(), b!.reap()]);
    const all = sortLeaves([...fromA, ...fromB]);
    assert.deepEqual(all, expected.sort(), 'every user once, none twice');
    assert.deepEqual([...(await a!.reap()), ...(await b!.reap())], []);
  });

  it('reaps more channels than one round holds, each lapsed user once, and keeps the live ones due later', async () => {
    const { store, clock, prefix } = await cluster();
    const admin = await redis.client();
    const live: PresenceEntry[] = [];
    for (let c = 0; c < 450; c++) {
      await store.add(`user:u${c}`, member(`u${c}`, `s${c}`));
      if (c % 3 === 0) live.push({ channel: `user:u${c}`, member: member(`u${c}`, `s${c}`) });
    }
    clock.advance(TTL / 2);
    assert.deepEqual(await store.refresh(live), []);
    clock.advance(TTL / 2);
    const gone = sortLeaves(await store.reap());
    const expected = Array.from({ length: 450 }, (_, c) => c)
      .filter((c) => c % 3 !== 0)
      .map((c) => `user:u${c} u${c}`);
    assert.deepEqual(gone, expected.sort(), 'three rounds of 200: every lapsed user once');
    assert.equal((await store.list('user:u3')).length, 1, 'a renewed user stays');
    const channels = await admin.zrange(`${prefix}{cluster}:presence-channels`, 0, -1, 'WITHSCORES');
    assert.equal(channels.length / 2, live.length, 'the emptied channels are forgotten');
    for (let i = 1; i < channels.length; i += 2) assert.ok(Number(channels[i]) > clock.now, 'the live ones are due after now');
    assert.deepEqual(await store.reap(), []);
  });

  it('announces the leave once when a node removes a user whose other sessions expired', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    await a!.add('group:ops', member('alice', 's1', 'n1')); // n1 will die
    clock.advance(TTL / 2);
    await b!.add('group:ops', member('alice', 's2', 'n2'));
    clock.advance(TTL); // s1 expired, s2 too but not reaped
    assert.equal(await b!.remove('group:ops', member('alice', 's2', 'n2')), true, 'the last session went: leave');
    assert.deepEqual(await a!.reap(), [], 'reap does not announce it again');
  });

  it('gives no second join to a user who comes back before their expired lease was reaped', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    assert.equal(await a!.add('group:ops', member('alice', 's1', 'n1')), true);
    clock.advance(TTL * 2); // n1 died; nobody reaped yet
    assert.equal(await b!.add('group:ops', member('alice', 's2', 'n2')), false, 'no leave was announced, so no join');
    assert.deepEqual(await b!.reap(), [], 'and no leave now either');
    assert.deepEqual(await b!.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n2'] }]);
    assert.equal(await b!.remove('group:ops', member('alice', 's2', 'n2')), true);
  });

  it('answers the entries a refresh found reaped, so the node can add them again with a join', async () => {
    const {
      stores: [a, b],
      clock,
    } = await cluster(2);
    const live = { channel: 'group:ops', member: member('alice', 's1', 'n1') };
    const lost = { channel: 'group:ops', member: member('bob', 's2', 'n1') };
    await a!.add(live.channel, live.member);
    await a!.add(lost.channel, lost.member);
    clock.advance(TTL / 2);
    await a!.refresh([live]);
    clock.advance(TTL * 0.6); // bob's lease ended (node n1 stalled for him), alice's did not
    assert.deepEqual(await b!.reap(), [{ channel: 'group:ops', user: 'bob' }]);
    assert.deepEqual(await a!.refresh([live, lost]), [lost]);
    assert.equal(await a!.add(lost.channel, lost.member), true, 'bob is back: a join after the leave');
  });

  it('refreshes hundreds of entries in slices and answers exactly the ones that were reaped, in order', async () => {
    const { store, clock } = await cluster();
    const entries = Array.from({ length: 250 }, (_, i) => ({
      channel: i % 2 ? 'group:big' : `user:u${i}`,
      member: member(`u${i}`, `s${i}`, 'n1'),
    }));
    for (const e of entries) await store.add(e.channel, e.member);
    const kept = entries.filter((_, i) => i % 7 !== 0);
    clock.advance(TTL / 2);
    await store.refresh(kept); // every seventh lease is not renewed…
    clock.advance(TTL * 0.6);
    await store.reap(); // …so it lapses and is reaped
    const lost = await store.refresh(entries);
    assert.deepEqual(
      lost.map((e) => e.member.session),
      entries.filter((_, i) => i % 7 === 0).map((e) => e.member.session),
    );
    assert.equal((await store.list('group:big')).length, kept.filter((e) => e.channel === 'group:big').length);
  });

  it('leaves no keys behind once everyone left and the channel was reaped', async () => {
    const { store, clock, prefix } = await cluster();
    const admin = await redis.client();
    await store.add('group:ops', member('alice', 's1'));
    await store.add('group:ops', member('bob', 's2'));
    await store.remove('group:ops', member('alice', 's1'));
    await store.remove('group:ops', member('bob', 's2'));
    clock.advance(TTL);
    assert.deepEqual(await store.reap(), []);
    assert.deepEqual(await keysWithPrefix(admin, prefix), []);
  });

  it('puts every key of a channel under its hash tag, and sets a safety TTL on them', async () => {
    const { store, prefix } = await cluster();
    const admin = await redis.client();
    await store.add('group:ops', member('alice', 's1'));
    const keys = await keysWithPrefix(admin, prefix);
    assert.deepEqual(
      keys.sort(),
      [
        `${prefix}{ch:group:ops}:s:alice`,
        `${prefix}{ch:group:ops}:u:alice`,
        `${prefix}{ch:group:ops}:users`,
        `${prefix}{cluster}:presence-channels`,
      ].sort(),
    );
    for (const key of keys.filter((k) => k.includes('{ch:'))) assert.ok((await admin.pttl(key)) > TTL, `${key} has a TTL past the lease`);
  });

  it('renews a session in the very millisecond it was added or last renewed: stored, so not lost', async () => {
    const { store } = await cluster(); // the fake clock does not move
    const entry = { channel: 'group:ops', member: member('alice', 's1') };
    await store.add(entry.channel, entry.member);
    assert.deepEqual(await store.refresh([entry]), []);
    assert.deepEqual(await store.refresh([entry]), []);
    assert.deepEqual(
      await store.refresh([{ channel: 'group:ops', member: member('bob', 's2') }]).then((l) => l.length),
      1,
      'never added: lost',
    );
  });

  it('renews the safety TTLs every quarter of their length, not on every refresh', async () => {
    const { store, clock, prefix } = await cluster();
    const admin = await redis.client();
    const entry = { channel: 'group:ops', member: member('alice', 's1') };
    await store.add(entry.channel, entry.member);
    await store.refresh([entry]); // the first refresh sets them
    const keys = (await keysWithPrefix(admin, prefix)).filter((k) => k.includes('{ch:'));
    assert.equal(keys.length, 3);
    for (const key of keys) await admin.pexpire(key, 60_000); // as if minutes had passed
    clock.advance(TTL / 3);
    assert.deepEqual(await store.refresh([entry]), []);
    for (const key of keys) assert.ok((await admin.pttl(key)) <= 60_000, `${key}: left alone by a renewal`);
    clock.advance(150_000); // a quarter of the ten-minute safety TTL
    assert.deepEqual(await store.refresh([entry]), [], 'lapsed but not reaped: still stored, so renewed');
    for (const key of keys) assert.ok((await admin.pttl(key)) > 500_000, `${key}: set again`);
  });

  it('rejects within a second, and is not ready, when Redis is unreachable', async () => {
    const client = new Redis({ host: '127.0.0.1', port: 1, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 1000 });
    client.on('error', () => undefined);
    try {
      const store = new RedisPresenceStore({ redis: client, prefix: `${redis.prefix}dead:` });
      assert.equal(store.ready, false);
      const m = member('alice', 's1');
      const calls = [
        () => store.add('group:a', m),
        () => store.remove('group:a', m),
        () => store.list('group:a'),
        () => store.sessions('alice'),
        () => store.refresh([{ channel: 'group:a', member: m }]),
        () => store.reap(),
      ];
      for (const call of calls) {
        const started = Date.now();
        await assert.rejects(call());
        assert.ok(Date.now() - started < 1000, `rejected after ${Date.now() - started} ms`);
      }
    } finally {
      client.disconnect();
    }
  });
});
