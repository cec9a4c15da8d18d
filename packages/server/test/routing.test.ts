/**
 * The routing decided once for every transport (src/broker/routing.ts): what a node binds from
 * the start, what it binds for a channel, and where a publication goes, per strategy.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../src/broker/routing.js';
import { HashRing } from '../src/registry/hash-ring.js';
import { RingHolder } from '../src/registry/ring-holder.js';

const ring = new RingHolder();
ring.set(HashRing.from(['n1', 'n2']));
const ownedBy = (node: string) => {
  for (let i = 0; ; i++) if (ring.ownerOf(`user:u${i}`) === node) return `user:u${i}`;
};
const mine = ownedBy('n1');
const theirs = ownedBy('n2');

describe('Router', () => {
  it('interest: binds nothing from the start, each channel by itself, and sends to the channel', () => {
    const r = new Router('interest', 'n1');
    assert.deepEqual(r.standing(), []);
    assert.deepEqual(r.bindingFor('group:ops'), { kind: 'channel', channel: 'group:ops' });
    assert.deepEqual(r.destinations('group:ops'), [{ kind: 'channel', channel: 'group:ops' }]);
    assert.deepEqual(r.destinations(mine), [{ kind: 'channel', channel: mine }], 'no ring in interest routing');
  });

  it('broadcast: binds everything once, no channel, and sends everything to all', () => {
    const r = new Router('broadcast', 'n1');
    assert.deepEqual(r.standing(), [{ kind: 'all' }]);
    assert.equal(r.bindingFor('group:ops'), undefined);
    assert.deepEqual(r.destinations('user:x'), [{ kind: 'all' }]);
  });

  it('hash: binds its own address; a user channel goes to its owner and to the channel; owned user channels need no binding', () => {
    const r = new Router('hash', 'n1', ring);
    assert.deepEqual(r.standing(), [{ kind: 'node', node: 'n1' }]);
    assert.equal(r.bindingFor(mine), undefined, 'the own address brings it');
    assert.deepEqual(r.bindingFor(theirs), { kind: 'channel', channel: theirs }, 'a session off its owner is served by interest');
    assert.deepEqual(r.bindingFor('group:ops'), { kind: 'channel', channel: 'group:ops' });
    assert.deepEqual(r.destinations(theirs), [
      { kind: 'node', node: 'n2' },
      { kind: 'channel', channel: theirs },
    ]);
    assert.deepEqual(r.destinations('group:ops'), [{ kind: 'channel', channel: 'group:ops' }]);
  });

  it('hash with an empty ring routes user channels by interest', () => {
    const r = new Router('hash', 'n1', new RingHolder());
    assert.deepEqual(r.destinations(mine), [{ kind: 'channel', channel: mine }]);
    assert.deepEqual(r.bindingFor(mine), { kind: 'channel', channel: mine });
  });

  it('names the valid strategies for an unknown one, and wants the ring for hash', () => {
    assert.throws(() => new Router('random' as never, 'n1'), /^Error: unknown routing "random": use interest, broadcast, hash$/);
    assert.throws(() => new Router('hash', 'n1'), /hash routing needs the ring/);
  });
});
