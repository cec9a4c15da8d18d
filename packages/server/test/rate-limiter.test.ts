/**
 * Unit tests of the per-session rate limit (PROTOCOL.md "Limits"): a token bucket driven by an
 * injected clock, and the limiter that turns it into ok / rejected / close verdicts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameRateLimiter, TokenBucket, type RateVerdict } from '../src/session/rate-limiter.js';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** Takes `n` times and counts the successes. */
function takeMany(bucket: TokenBucket, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (bucket.take()) ok++;
  return ok;
}

/** Runs `n` checks and tallies the verdicts. */
function checkMany(limiter: FrameRateLimiter, n: number): Record<RateVerdict, number> {
  const tally: Record<RateVerdict, number> = { ok: 0, rejected: 0, close: 0 };
  for (let i = 0; i < n; i++) tally[limiter.check()]++;
  return tally;
}

describe('TokenBucket', () => {
  it('starts full: allows exactly `capacity` takes at once, then refuses', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    assert.equal(takeMany(bucket, 5), 5);
    assert.equal(bucket.take(), false);
    assert.equal(bucket.take(), false);
  });

  it('refills at `perSecond`: one token per 1/perSecond seconds', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    takeMany(bucket, 5);
    clock.advance(99);
    assert.equal(bucket.take(), false, 'less than 100 ms at 10/s is not a whole token');
    clock.advance(1);
    assert.equal(bucket.take(), true);
    assert.equal(bucket.take(), false);
    clock.advance(300);
    assert.equal(takeMany(bucket, 10), 3);
  });

  it('accumulates fractional refills across several small steps', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 5, clock.now);
    takeMany(bucket, 5);
    for (let i = 0; i < 4; i++) {
      clock.advance(25);
      if (i < 3) assert.equal(bucket.take(), false, `after ${(i + 1) * 25} ms`);
    }
    assert.equal(bucket.take(), true, '4 × 25 ms make one token at 10/s');
  });

  it('never holds more than `capacity`, however long it was idle', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(100, 7, clock.now);
    takeMany(bucket, 7);
    clock.advance(3_600_000);
    assert.equal(takeMany(bucket, 100), 7);
  });

  it('does not mint tokens when the clock goes backwards', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 2, clock.now);
    takeMany(bucket, 2);
    clock.advance(-5000);
    assert.equal(bucket.take(), false);
    clock.advance(5000);
    assert.equal(bucket.take(), false, 'returning to the original time adds nothing');
    clock.advance(100);
    assert.equal(bucket.take(), true);
  });

  it('supports rates below one per second', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(0.5, 1, clock.now);
    assert.equal(bucket.take(), true);
    clock.advance(1999);
    assert.equal(bucket.take(), false);
    clock.advance(1);
    assert.equal(bucket.take(), true);
  });

  it('says how long until the next token without taking it (waitMs), and when it is full again (isFull)', () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(4, 2, clock.now);
    assert.equal(bucket.waitMs(), 0);
    assert.equal(bucket.isFull(), true);
    takeMany(bucket, 2);
    assert.equal(bucket.isFull(), false);
    assert.equal(bucket.waitMs(), 250, 'one token at 4/s');
    assert.equal(bucket.waitMs(), 250, 'asking takes nothing');
    clock.advance(100);
    assert.equal(bucket.waitMs(), 150);
    clock.advance(150);
    assert.equal(bucket.waitMs(), 0);
    assert.equal(bucket.isFull(), false, 'one of two tokens');
    clock.advance(250);
    assert.equal(bucket.isFull(), true);
    assert.equal(takeMany(bucket, 3), 2);
  });
});

describe('FrameRateLimiter', () => {
  it('lets a burst of `burst` frames through, then rejects', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(10, 10, 50, clock.now);
    assert.deepEqual(checkMany(limiter, 15), { ok: 10, rejected: 5, close: 0 });
  });

  it('closes after `maxRejected` rejections in a sustained flood', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(10, 10, 50, clock.now);
    const verdicts: RateVerdict[] = [];
    for (let i = 0; i < 61; i++) verdicts.push(limiter.check());
    assert.deepEqual(verdicts.slice(0, 10), Array(10).fill('ok'));
    assert.deepEqual(verdicts.slice(10, 60), Array(50).fill('rejected'));
    assert.equal(verdicts[60], 'close');
  });

  it('keeps answering close while the flood goes on', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(10, 1, 3, clock.now);
    checkMany(limiter, 4);
    assert.deepEqual(checkMany(limiter, 5), { ok: 0, rejected: 0, close: 5 });
  });

  it('never rejects a client that stays within the rate, over a long time', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(100, 200, 50, clock.now);
    // 100 frames/s for 60 s, evenly spaced.
    for (let i = 0; i < 6000; i++) {
      assert.equal(limiter.check(), 'ok', `frame ${i}`);
      clock.advance(10);
    }
  });

  it('forgives rejections at a tenth of the rate, so occasional overruns never close', () => {
    const clock = fakeClock();
    // 10/s: strikes drain at 1/s; at most 3 may pile up.
    const limiter = new FrameRateLimiter(10, 1, 3, clock.now);
    for (let second = 0; second < 30; second++) {
      // Each second: 10 frames spent on time, plus one extra frame that is rejected.
      assert.equal(limiter.check(), 'ok');
      assert.equal(limiter.check(), 'rejected', `second ${second}`);
      for (let i = 0; i < 9; i++) {
        clock.advance(100);
        assert.equal(limiter.check(), 'ok');
      }
      clock.advance(100);
    }
  });

  it('closes when rejections come faster than they are forgiven', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(10, 1, 3, clock.now);
    const verdicts: RateVerdict[] = [];
    // Two over-limit frames per second: strikes are forgiven at only 1/s.
    for (let second = 0; second < 10 && !verdicts.includes('close'); second++) {
      verdicts.push(limiter.check(), limiter.check(), limiter.check());
      clock.advance(1000);
    }
    assert.ok(verdicts.includes('close'), `never closed: ${verdicts.join(',')}`);
    assert.ok(verdicts.indexOf('close') > 3, 'not before the first strikes were used up');
  });

  it('recovers fully after an idle period: a new burst is allowed', () => {
    const clock = fakeClock();
    const limiter = new FrameRateLimiter(10, 10, 5, clock.now);
    assert.deepEqual(checkMany(limiter, 15), { ok: 10, rejected: 5, close: 0 });
    clock.advance(60_000);
    assert.deepEqual(checkMany(limiter, 15), { ok: 10, rejected: 5, close: 0 });
  });
});
