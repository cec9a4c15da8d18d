import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { TokenBucket } from '../session/rate-limiter.js';
import { sendError } from './respond.js';

/** Why a `/v1` request was answered 429: the `reason` label of the rejected-requests counters. */
export type HttpRejectReason = 'rate_limited' | 'auth_failures';

/** The limits, as the node options of the same names give them. */
export interface HttpLimitsOptions {
  /** `/v1` requests per second one client address may make; 0 turns the request limit off. */
  httpRateLimitPerSecond: number;
  /** Requests one address may make at once; 0 turns the request limit off. */
  httpRateLimitBurst: number;
  /** Failed authentications per second one address is allowed once its burst is spent. */
  httpAuthFailuresPerSecond: number;
  /** Failed authentications one address may make at once. */
  httpAuthFailuresBurst: number;
}

/** What {@link HttpLimits} works with. */
export interface HttpLimitsDeps {
  /** Warns once per address and blocking episode (the logger carries the node or gateway id). */
  log: Logger;
  /** Called for every request answered 429. */
  rejected: (reason: HttpRejectReason) => void;
  /** Addresses tracked at most; past it the longest-tracked one is forgotten. @default 10_000 */
  maxAddresses?: number;
  /** The clock; tests drive it. @default Date.now */
  now?: () => number;
}

/** How often the addresses whose buckets are full again are forgotten. */
const SWEEP_MS = 10_000;

/** Addresses tracked at most (a few hundred bytes each). */
const MAX_ADDRESSES = 10_000;

/** One client address: its buckets (absent while full) and whether this episode was logged. */
interface AddressState {
  requests: TokenBucket | undefined;
  failures: TokenBucket | undefined;
  warnedLimited: boolean;
  warnedBlocked: boolean;
}

/**
 * The HTTP limits of `/v1`, per client address (`req.socket.remoteAddress`): a token bucket of
 * requests (`httpRateLimitPerSecond`, `httpRateLimitBurst`; off at 0) and, always, a tight one of
 * failed authentications (`httpAuthFailuresPerSecond`, `httpAuthFailuresBurst`), so that the API key
 * cannot be guessed quickly. An address over either gets 429 `rate_limited` with `Retry-After`
 * (whole seconds); while its failures bucket is empty, every `/v1` request from it does, with the
 * right key too. Memory is bounded: a bucket that has refilled is dropped (it is as good as a new
 * one), a timer sweeps them every 10 s, and at most `maxAddresses` are tracked.
 */
export class HttpLimits {
  private readonly addresses = new Map<string, AddressState>();
  private readonly requestsOn: boolean;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly options: HttpLimitsOptions,
    private readonly deps: HttpLimitsDeps,
  ) {
    this.requestsOn = options.httpRateLimitPerSecond > 0 && options.httpRateLimitBurst > 0;
    this.maxAddresses = deps.maxAddresses ?? MAX_ADDRESSES;
    this.now = deps.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /**
   * Runs `handle` for a `/v1` request unless its address is over a limit (then answers 429 and
   * skips it); an answer of 401 counts as a failed authentication of the address.
   */
  async serve(req: IncomingMessage, res: ServerResponse, handle: () => Promise<void>): Promise<void> {
    if (!this.admit(req, res)) return;
    await handle();
    if (res.statusCode === 401) this.authFailed(req);
  }

  /** Takes a request of the request's address; false after answering 429 when it is over a limit. */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const address = addressOf(req);
    let state = this.addresses.get(address);
    const blockedMs = state?.failures?.waitMs() ?? 0;
    if (state && blockedMs > 0) return this.reject(res, address, state, 'auth_failures', blockedMs);
    if (!this.requestsOn) return true;
    state ??= this.track(address);
    const { httpRateLimitPerSecond, httpRateLimitBurst } = this.options;
    state.requests ??= new TokenBucket(httpRateLimitPerSecond, httpRateLimitBurst, this.now);
    if (state.requests.take()) return true;
    return this.reject(res, address, state, 'rate_limited', state.requests.waitMs());
  }

  /** Counts a failed authentication of the request's address. */
  authFailed(req: IncomingMessage): void {
    const address = addressOf(req);
    const state = this.addresses.get(address) ?? this.track(address);
    const { httpAuthFailuresPerSecond, httpAuthFailuresBurst } = this.options;
    state.failures ??= new TokenBucket(httpAuthFailuresPerSecond, httpAuthFailuresBurst, this.now);
    state.failures.take();
  }

  /** Forgets the buckets that are full again, and the addresses left with none (the timer calls it). */
  sweep(): void {
    for (const [address, state] of this.addresses) {
      if (state.requests?.isFull()) state.requests = undefined;
      if (state.failures?.isFull()) state.failures = undefined;
      // A bucket refilled ends its blocking episode: the next one is logged again.
      if (!state.requests) state.warnedLimited = false;
      if (!state.failures) state.warnedBlocked = false;
      if (!state.requests && !state.failures) this.addresses.delete(address);
    }
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.addresses.size;
  }

  /** Stops the sweep timer. Idempotent. */
  close(): void {
    clearInterval(this.sweeper);
  }

  private track(address: string): AddressState {
    // Map order is insertion order: past the bound, the address tracked longest goes first.
    if (this.addresses.size >= this.maxAddresses) this.addresses.delete(this.addresses.keys().next().value!);
    const state: AddressState = { requests: undefined, failures: undefined, warnedLimited: false, warnedBlocked: false };
    this.addresses.set(address, state);
    return state;
  }

  private reject(res: ServerResponse, address: string, state: AddressState, reason: HttpRejectReason, waitMs: number): false {
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    this.deps.rejected(reason);
    if (reason === 'rate_limited') {
      if (!state.warnedLimited) {
        state.warnedLimited = true;
        this.deps.log.warn({ address, reason, retryAfter }, 'HTTP rate limit reached: answering 429 to this address');
      }
      const { httpRateLimitPerSecond: rate, httpRateLimitBurst: burst } = this.options;
      sendError(res, 'ERR_RATE_LIMITED', `over ${rate} requests/s (bursts of ${burst}) from this address: retry after ${retryAfter} s`, {
        'retry-after': String(retryAfter),
      });
    } else {
      if (!state.warnedBlocked) {
        state.warnedBlocked = true;
        this.deps.log.warn({ address, reason, retryAfter }, 'too many failed HTTP authentications: answering 429 to this address');
      }
      sendError(res, 'ERR_RATE_LIMITED', `too many failed authentications from this address: retry after ${retryAfter} s`, {
        'retry-after': String(retryAfter),
      });
    }
    return false;
  }
}

function addressOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
