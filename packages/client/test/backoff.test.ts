/** fullJitter: a uniform delay in [0, min(maxMs, baseMs·2^attempt)), from an injectable random source. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fullJitter } from '../src/index.js';

describe('fullJitter', () => {
  it('spans the whole window: random 0 gives 0, random just under 1 gives just under the cap', () => {
    assert.equal(fullJitter({ baseMs: 100, random: () => 0 })(3), 0);
    // 100 · 2^3 = 800: the largest delay is 799, never 800.
    assert.equal(fullJitter({ baseMs: 100, random: () => 0.999999 })(3), 799);
  });

  it('doubles the window per attempt: random 0.5 gives half of baseMs·2^attempt', () => {
    const backoff = fullJitter({ baseMs: 100, maxMs: 1_000_000, random: () => 0.5 });
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(backoff), [50, 100, 200, 400, 800, 1600]);
  });

  it('caps the window at maxMs however many attempts', () => {
    const backoff = fullJitter({ baseMs: 100, maxMs: 1000, random: () => 0.5 });
    assert.deepEqual([4, 5, 10, 64, 1000].map(backoff), [500, 500, 500, 500, 500]);
  });

  it('defaults to base 500 ms and cap 30 s', () => {
    const backoff = fullJitter({ random: () => 0.5 });
    assert.equal(backoff(0), 250);
    assert.equal(backoff(1), 500);
    assert.equal(backoff(20), 15_000);
  });

  it('stays an integer in [0, window) with Math.random', () => {
    const backoff = fullJitter({ baseMs: 10, maxMs: 5000 });
    for (let attempt = 0; attempt < 20; attempt++) {
      const window = Math.min(5000, 10 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const d = backoff(attempt);
        assert.ok(Number.isInteger(d) && d >= 0 && d < window, `attempt ${attempt}: ${d} outside [0, ${window})`);
      }
    }
  });

  it('draws one random number per delay from the injected source', () => {
    let calls = 0;
    const backoff = fullJitter({ baseMs: 1000, random: () => (calls++ % 2 === 0 ? 0.25 : 0.75) });
    assert.deepEqual([backoff(0), backoff(0), backoff(1)], [250, 750, 500]);
    assert.equal(calls, 3);
  });
});
