/**
 * The PresenceStore contract: what every presence backend must do, run against each of them from
 * presence.contract.test.ts. Presence is per user: only a user's first session in a channel is a
 * join and only their last is a leave, however many nodes (store instances) the sessions are on.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { PresenceUser } from '@switchboard/protocol';
import type { PresenceMember, PresenceStore } from '../../src/presence/presence-store.js';

/**
 * Opens `count` stores over one fresh, empty namespace, as `count` nodes of one cluster have them
 * (a backend whose instances cannot share state hands out one instance `count` times). The test
 * file closes them and deletes what they stored.
 */
export type OpenStores = (count: number) => Promise<PresenceStore[]>;

export function member(user: string, session: string, node = 'n1', since = 1000): PresenceMember {
  return { user, session, node, since };
}

const byUser = (users: PresenceUser[]): PresenceUser[] => [...users].sort((a, b) => a.user.localeCompare(b.user));

/** Registers the presence contract tests (call inside a `describe`). */
export function presenceContract(open: OpenStores): void {
  const one = async (): Promise<PresenceStore> => (await open(1))[0]!;

  it('reports the first session of a user as a join and a second session as none', async () => {
    const store = await one();
    assert.equal(await store.add('group:ops', member('alice', 's1')), true);
    assert.equal(await store.add('group:ops', member('alice', 's2')), false);
    assert.equal(await store.add('group:ops', member('bob', 's3')), true, 'another user is their own join');
    assert.equal(await store.add('group:dev', member('alice', 's1')), true, 'each channel counts on its own');
  });

  it('reports a leave only when the last session of the user goes', async () => {
    const store = await one();
    await store.add('group:ops', member('alice', 's1'));
    await store.add('group:ops', member('alice', 's2'));
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false);
    assert.equal(await store.remove('group:ops', member('alice', 's2')), true);
    assert.deepEqual(await store.list('group:ops'), []);
    assert.equal(await store.add('group:ops', member('alice', 's3')), true, 'coming back after the leave is a join again');
  });

  it('does not report a leave for a session it never had', async () => {
    const store = await one();
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false, 'unknown channel');
    await store.add('group:ops', member('alice', 's1'));
    assert.equal(await store.remove('group:ops', member('alice', 'nope')), false, 'unknown session');
    assert.equal(await store.remove('group:ops', member('carol', 's9')), false, 'unknown user');
    assert.equal(await store.remove('group:ops', member('alice', 's1')), true);
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false, 'a second remove is not a second leave');
  });

  it('counts a re-added session once', async () => {
    const store = await one();
    await store.add('group:ops', member('alice', 's1'));
    assert.equal(await store.add('group:ops', member('alice', 's1')), false);
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }]);
    assert.equal(await store.remove('group:ops', member('alice', 's1')), true);
  });

  it('lists users with their session counts and distinct sorted nodes', async () => {
    const store = await one();
    await store.add('group:ops', member('alice', 's1', 'n2'));
    await store.add('group:ops', member('alice', 's2', 'n1'));
    await store.add('group:ops', member('alice', 's3', 'n2'));
    await store.add('group:ops', member('bob', 's4', 'n1'));
    await store.add('group:dev', member('carol', 's5', 'n1'));
    assert.deepEqual(byUser(await store.list('group:ops')), [
      { user: 'alice', sessions: 3, nodes: ['n1', 'n2'] },
      { user: 'bob', sessions: 1, nodes: ['n1'] },
    ]);
    assert.deepEqual(await store.list('group:empty'), []);
  });

  it('keeps ids with separator characters apart', async () => {
    const store = await one();
    await store.add('group:a|b{c}', member('x|y', 's|1', 'n|1', 42));
    await store.add('group:a|b{c}', member('x', 'y|s|1', 'n|2'));
    assert.deepEqual(byUser(await store.list('group:a|b{c}')), [
      { user: 'x', sessions: 1, nodes: ['n|2'] },
      { user: 'x|y', sessions: 1, nodes: ['n|1'] },
    ]);
    await store.add('user:x|y', member('x|y', 's|1', 'n|1', 42));
    assert.deepEqual(await store.sessions('x|y'), [{ session: 's|1', node: 'n|1', since: 42 }]);
    assert.deepEqual(await store.sessions('x'), []);
  });

  it("lists a user's sessions from their personal channel", async () => {
    const store = await one();
    await store.add('user:alice', member('alice', 's1', 'n1', 111));
    await store.add('user:alice', member('alice', 's2', 'n2', 222));
    await store.add('group:ops', member('alice', 's3', 'n3', 333)); // not a personal-channel session
    const sessions = (await store.sessions('alice')).sort((a, b) => a.session.localeCompare(b.session));
    assert.deepEqual(sessions, [
      { session: 's1', node: 'n1', since: 111 },
      { session: 's2', node: 'n2', since: 222 },
    ]);
    assert.deepEqual(await store.sessions('bob'), []);
    await store.remove('user:alice', member('alice', 's1'));
    assert.deepEqual(
      (await store.sessions('alice')).map((s) => s.session),
      ['s2'],
    );
  });

  it('lists the users online from their personal channels, bounded by the limit', async () => {
    const [a, b] = await open(2);
    assert.deepEqual(await a!.online(10), { users: [], more: false });
    await a!.add('user:alice', member('alice', 's1', 'n1'));
    await b!.add('user:bob', member('bob', 's2', 'n2'));
    await b!.add('user:bob', member('bob', 's3', 'n2'));
    await a!.add('group:ops', member('carol', 's4', 'n1')); // in a group, but no personal channel
    const all = await b!.online(10);
    assert.deepEqual({ users: [...all.users].sort(), more: all.more }, { users: ['alice', 'bob'], more: false });
    const cut = await a!.online(1);
    assert.equal(cut.users.length, 1);
    assert.equal(cut.more, true);
    await a!.remove('user:alice', member('alice', 's1', 'n1'));
    assert.deepEqual(await a!.online(10), { users: ['bob'], more: false });
  });

  it('gives two tabs of one user on two nodes one join and one leave', async () => {
    const [a, b] = await open(2);
    assert.equal(await a!.add('group:ops', member('alice', 's1', 'n1')), true, 'first tab, node 1: join');
    assert.equal(await b!.add('group:ops', member('alice', 's2', 'n2')), false, 'second tab, node 2: no join');
    assert.deepEqual(await b!.list('group:ops'), [{ user: 'alice', sessions: 2, nodes: ['n1', 'n2'] }]);
    assert.equal(await a!.remove('group:ops', member('alice', 's1', 'n1')), false, 'a tab closes: no leave');
    assert.deepEqual(await a!.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n2'] }]);
    assert.equal(await b!.remove('group:ops', member('alice', 's2', 'n2')), true, 'the last tab closes: leave');
  });

  it('gives exactly one join and one leave when two nodes race', async () => {
    const [a, b] = await open(2);
    for (let round = 0; round < 5; round++) {
      const joins = await Promise.all([
        a!.add('group:race', member('alice', 's1', 'n1')),
        b!.add('group:race', member('alice', 's2', 'n2')),
      ]);
      assert.equal(joins.filter(Boolean).length, 1, `round ${round}: one join`);
      const leaves = await Promise.all([
        a!.remove('group:race', member('alice', 's1', 'n1')),
        b!.remove('group:race', member('alice', 's2', 'n2')),
      ]);
      assert.equal(leaves.filter(Boolean).length, 1, `round ${round}: one leave`);
    }
  });

  it('keeps refreshed sessions and answers no lost entries for them', async () => {
    const store = await one();
    await store.add('group:ops', member('alice', 's1'));
    await store.add('user:alice', member('alice', 's1'));
    assert.deepEqual(await store.refresh([]), []);
    assert.deepEqual(
      await store.refresh([
        { channel: 'group:ops', member: member('alice', 's1') },
        { channel: 'user:alice', member: member('alice', 's1') },
      ]),
      [],
    );
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }]);
    assert.equal((await store.sessions('alice')).length, 1);
  });

  it('reaps nothing while every session is live', async () => {
    const store = await one();
    await store.add('group:ops', member('alice', 's1'));
    assert.deepEqual(await store.reap(), []);
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }]);
  });

  it('is ready until closed', async () => {
    const store = await one();
    assert.equal(store.ready, true);
    await store.close();
    assert.equal(store.ready, false);
    await store.close(); // idempotent
  });
}
