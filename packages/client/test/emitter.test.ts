/** The SDK's typed emitter: add/remove listeners, order, and isolation of a throwing listener. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Emitter } from '../src/emitter.js';

interface Events {
  tick: number;
  word: string;
}

describe('Emitter', () => {
  it('calls every listener of an event in the order they were added, with the payload', () => {
    const e = new Emitter<Events>();
    const seen: string[] = [];
    e.on('tick', (n) => seen.push(`a${n}`));
    e.on('tick', (n) => seen.push(`b${n}`));
    e.on('word', (w) => seen.push(`word ${w}`));
    e.emit('tick', 1);
    e.emit('word', 'x');
    assert.deepEqual(seen, ['a1', 'b1', 'word x']);
  });

  it('on() returns an unsubscribe function; off() removes a listener; count() follows', () => {
    const e = new Emitter<Events>();
    const seen: number[] = [];
    const a = (n: number) => seen.push(n);
    const b = (n: number) => seen.push(n * 10);
    const offA = e.on('tick', a);
    e.on('tick', b);
    assert.equal(e.count('tick'), 2);
    offA();
    e.emit('tick', 1);
    e.off('tick', b);
    e.emit('tick', 2);
    assert.deepEqual(seen, [10]);
    assert.equal(e.count('tick'), 0);
    assert.equal(e.count('word'), 0);
  });

  it('emitting an event without listeners does nothing', () => {
    assert.doesNotThrow(() => new Emitter<Events>().emit('word', 'nobody'));
  });

  it('adding the same listener twice registers it once', () => {
    const e = new Emitter<Events>();
    let calls = 0;
    const l = () => calls++;
    e.on('tick', l);
    e.on('tick', l);
    e.emit('tick', 0);
    assert.equal(calls, 1);
  });

  it('a listener removed during an emit still sees that emit, not the next', () => {
    const e = new Emitter<Events>();
    const seen: string[] = [];
    let offB = () => {};
    e.on('tick', () => {
      seen.push('a');
      offB();
    });
    offB = e.on('tick', () => seen.push('b'));
    e.emit('tick', 1);
    e.emit('tick', 2);
    assert.deepEqual(seen, ['a', 'b', 'a']);
  });

  it('a throwing listener does not stop the others, and its error is rethrown on a later tick', (t) => {
    // Timers are mocked so the rethrow can be observed here instead of failing the run.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const e = new Emitter<Events>();
    const seen: string[] = [];
    const boom = new Error('listener bug');
    e.on('word', () => {
      throw boom;
    });
    e.on('word', (w) => seen.push(w));
    assert.doesNotThrow(() => e.emit('word', 'still delivered'));
    assert.deepEqual(seen, ['still delivered']);
    assert.throws(
      () => t.mock.timers.tick(0),
      (err) => err === boom,
    );
  });
});
