/**
 * Unit tests of MemoryPresenceStore: presence is per user, so only a user's first session in a
 * channel is a join and only their last is a leave.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryPresenceStore } from '../src/presence/memory-presence-store.js';
import type { PresenceMember } from '../src/presence/presence-store.js';

function member(user: string, session: string, node = 'n1', since = 1000): PresenceMember {
  return { user, session, node, since };
}

describe('MemoryPresenceStore', () => {
  it('reports the first session of a user as a join and a second session as none', async () => {
    const store = new MemoryPresenceStore();
    assert.equal(await store.add('group:ops', member('alice', 's1')), true);
    assert.equal(await store.add('group:ops', member('alice', 's2')), false);
    assert.equal(await store.add('group:ops', member('bob', 's3')), true, 'another user is their own join');
    assert.equal(await store.add('group:dev', member('alice', 's1')), true, 'each channel counts on its own');
  });

  it('reports a leave only when the last session of the user goes', async () => {
    const store = new MemoryPresenceStore();
    await store.add('group:ops', member('alice', 's1'));
    await store.add('group:ops', member('alice', 's2'));
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false);
    assert.equal(await store.remove('group:ops', member('alice', 's2')), true);
    assert.deepEqual(await store.list('group:ops'), []);
  });

  it('does not report a leave for a session it never had', async () => {
    const store = new MemoryPresenceStore();
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false, 'unknown channel');
    await store.add('group:ops', member('alice', 's1'));
    assert.equal(await store.remove('group:ops', member('alice', 'nope')), false, 'unknown session');
    assert.equal(await store.remove('group:ops', member('carol', 's9')), false, 'unknown user');
    assert.equal(await store.remove('group:ops', member('alice', 's1')), true);
    assert.equal(await store.remove('group:ops', member('alice', 's1')), false, 'a second remove is not a second leave');
  });

  it('counts a re-added session once', async () => {
    const store = new MemoryPresenceStore();
    await store.add('group:ops', member('alice', 's1'));
    await store.add('group:ops', member('alice', 's1'));
    assert.deepEqual(await store.list('group:ops'), [{ user: 'alice', sessions: 1, nodes: ['n1'] }]);
    assert.equal(await store.remove('group:ops', member('alice', 's1')), true);
  });

  it('lists users with their session counts and distinct sorted nodes', async () => {
    const store = new MemoryPresenceStore();
    await store.add('group:ops', member('alice', 's1', 'n2'));
    await store.add('group:ops', member('alice', 's2', 'n1'));
    await store.add('group:ops', member('alice', 's3', 'n2'));
    await store.add('group:ops', member('bob', 's4', 'n1'));
    await store.add('group:dev', member('carol', 's5', 'n1'));
    const users = (await store.list('group:ops')).sort((a, b) => a.user.localeCompare(b.user));
    assert.deepEqual(users, [
      { user: 'alice', sessions: 3, nodes: ['n1', 'n2'] },
      { user: 'bob', sessions: 1, nodes: ['n1'] },
    ]);
    assert.deepEqual(await store.list('group:empty'), []);
  });

  it('lists a user\'s sessions from their personal channel', async () => {
    const store = new MemoryPresenceStore();
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
    assert.deepEqual((await store.sessions('alice')).map((s) => s.session), ['s2']);
  });

  it('is not ready after close', async () => {
    const store = new MemoryPresenceStore();
    assert.equal(store.ready, true);
    await store.close();
    assert.equal(store.ready, false);
  });
});
