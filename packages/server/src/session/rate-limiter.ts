/**
 * A token bucket: `capacity` tokens, refilled at `perSecond`. Time comes from `now` so tests can
 * drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly capacity: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = capacity;
    this.last = now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is there, without taking it: 0 when one is. */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  /** True once the bucket has refilled to capacity: it is then as good as a new one (and may be dropped). */
  isFull(): boolean {
    this.refill();
    return this.tokens >= this.capacity;
  }

  private refill(): void {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.perSecond);
      this.last = t;
    }
  }
}

/** Verdict on one incoming frame. */
export type RateVerdict = 'ok' | 'rejected' | 'close';

/**
 * Per-session frame rate limit: frames over the rate are rejected (`rate_limited`); when rejected
 * frames pile up faster than a tenth of the rate drains them, the flood is sustained and the
 * session is closed (4029).
 */
export class FrameRateLimiter {
  private readonly frames: TokenBucket;
  private readonly strikes: TokenBucket;

  constructor(perSecond: number, burst: number, maxRejected: number, now: () => number = Date.now) {
    this.frames = new TokenBucket(perSecond, burst, now);
    this.strikes = new TokenBucket(perSecond / 10, maxRejected, now);
  }

  check(): RateVerdict {
    if (this.frames.take()) return 'ok';
    return this.strikes.take() ? 'rejected' : 'close';
  }
}
