/**
 * The pure reconnect policy: for every class of close code (protocol `reconnectAdvice`), whether
 * the client stops or retries, after which delay, with which counters, and when it asks for a
 * fresh token; then how the counters grow over a run of failures.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, fullJitter } from '../src/index.js';
import {
  IMMEDIATE_RETRY_LIMIT,
  nextReconnect,
  nextReconnectAfterTokenFailure,
  type ReconnectContext,
  type ReconnectDecision,
} from '../src/reconnect.js';

/** A backoff answering 1000 + attempt, so each expected delay shows which attempt it was computed for. */
function recording(): ReconnectContext['backoff'] & { calls: number[] } {
  const calls: number[] = [];
  return Object.assign((attempt: number) => (calls.push(attempt), 1000 + attempt), { calls });
}

const retry = (delayMs: number, attempt: number, immediateRetries: number, refreshToken = false): ReconnectDecision => ({
  delayMs,
  refreshToken,
  attempt,
  immediateRetries,
});

interface Row {
  name: string;
  code: number;
  attempt?: number;
  immediateRetries?: number;
  tokenIsFunction?: boolean;
  expected: ReconnectDecision;
  /** The attempts the backoff was asked about. */
  backoffCalls: number[];
}

const rows: Row[] = [
  // stop: the close code forbids reconnecting
  { name: '1000 normal', code: CloseCode.NORMAL, expected: { stop: 'final' }, backoffCalls: [] },
  { name: '1008 policy', code: CloseCode.POLICY, expected: { stop: 'final' }, backoffCalls: [] },
  { name: '1009 too large', code: CloseCode.TOO_LARGE, expected: { stop: 'final' }, backoffCalls: [] },
  { name: '4003 forbidden (kicked)', code: CloseCode.FORBIDDEN, expected: { stop: 'final' }, backoffCalls: [] },
  {
    name: '1000 normal, even mid-backoff',
    code: CloseCode.NORMAL,
    attempt: 5,
    immediateRetries: 2,
    expected: { stop: 'final' },
    backoffCalls: [],
  },
  // now: no backoff while immediate retries remain
  { name: '1001 going away (drain)', code: CloseCode.GOING_AWAY, expected: retry(0, 0, 1), backoffCalls: [] },
  { name: '1012 restart', code: CloseCode.RESTART, expected: retry(0, 0, 1), backoffCalls: [] },
  { name: '4000 moved', code: CloseCode.MOVED, expected: retry(0, 0, 1), backoffCalls: [] },
  {
    name: '4000 moved keeps the attempt count',
    code: CloseCode.MOVED,
    attempt: 4,
    immediateRetries: 1,
    expected: retry(0, 4, 2),
    backoffCalls: [],
  },
  {
    name: '4000 moved, last immediate retry',
    code: CloseCode.MOVED,
    immediateRetries: IMMEDIATE_RETRY_LIMIT - 1,
    expected: retry(0, 0, IMMEDIATE_RETRY_LIMIT),
    backoffCalls: [],
  },
  {
    name: '4000 moved, immediate retries used up: backoff',
    code: CloseCode.MOVED,
    attempt: 2,
    immediateRetries: IMMEDIATE_RETRY_LIMIT,
    expected: retry(1002, 3, IMMEDIATE_RETRY_LIMIT),
    backoffCalls: [2],
  },
  {
    name: '1001 going away, immediate retries used up: backoff',
    code: CloseCode.GOING_AWAY,
    immediateRetries: IMMEDIATE_RETRY_LIMIT,
    expected: retry(1000, 1, IMMEDIATE_RETRY_LIMIT),
    backoffCalls: [0],
  },
  // refresh-token: only a token function can cure a 4001
  {
    name: '4001 with a token function, first: at once, fresh token',
    code: CloseCode.UNAUTHORIZED,
    tokenIsFunction: true,
    expected: retry(0, 1, 0, true),
    backoffCalls: [],
  },
  {
    name: '4001 with a token function, again: backoff, fresh token',
    code: CloseCode.UNAUTHORIZED,
    tokenIsFunction: true,
    attempt: 1,
    expected: retry(1001, 2, 0, true),
    backoffCalls: [1],
  },
  {
    name: '4001 with a token function keeps immediate retries',
    code: CloseCode.UNAUTHORIZED,
    tokenIsFunction: true,
    attempt: 3,
    immediateRetries: 2,
    expected: retry(1003, 4, 2, true),
    backoffCalls: [3],
  },
  {
    name: '4001 with a fixed token: stop',
    code: CloseCode.UNAUTHORIZED,
    tokenIsFunction: false,
    expected: { stop: 'token-not-refreshable' },
    backoffCalls: [],
  },
  {
    name: '4001 with a fixed token mid-backoff: stop',
    code: CloseCode.UNAUTHORIZED,
    tokenIsFunction: false,
    attempt: 3,
    expected: { stop: 'token-not-refreshable' },
    backoffCalls: [],
  },
  // backoff: faults, overload and unknown codes
  { name: '1006 abnormal (network)', code: 1006, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '1006 abnormal, later attempt', code: 1006, attempt: 7, immediateRetries: 1, expected: retry(1007, 8, 1), backoffCalls: [7] },
  { name: '1011 internal', code: CloseCode.INTERNAL, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '1013 overloaded', code: CloseCode.OVERLOADED, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '4008 slow consumer', code: CloseCode.SLOW_CONSUMER, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '4029 rate limited', code: CloseCode.RATE_LIMITED, attempt: 2, expected: retry(1002, 3, 0), backoffCalls: [2] },
  { name: '4500 unknown 4xxx', code: 4500, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '4999 unknown 4xxx', code: 4999, attempt: 1, expected: retry(1001, 2, 0), backoffCalls: [1] },
  { name: '1005 no status', code: 1005, expected: retry(1000, 1, 0), backoffCalls: [0] },
  { name: '3000 unknown registered code', code: 3000, expected: retry(1000, 1, 0), backoffCalls: [0] },
];

describe('nextReconnect', () => {
  for (const row of rows) {
    it(`${row.name} → ${'stop' in row.expected ? `stop (${row.expected.stop})` : `retry in ${row.expected.delayMs} ms`}`, () => {
      const backoff = recording();
      const context: ReconnectContext = {
        attempt: row.attempt ?? 0,
        immediateRetries: row.immediateRetries ?? 0,
        tokenIsFunction: row.tokenIsFunction ?? true,
        backoff,
      };
      const before = { ...context };
      assert.deepEqual(nextReconnect(row.code, context), row.expected);
      assert.deepEqual(backoff.calls, row.backoffCalls);
      assert.deepEqual(context, before, 'the context is not modified');
    });
  }

  it('a run of network faults: attempt grows by one per failure, the delay window doubles up to the backoff cap', () => {
    const context: ReconnectContext = {
      attempt: 0,
      immediateRetries: 0,
      tokenIsFunction: true,
      backoff: fullJitter({ baseMs: 100, maxMs: 1000, random: () => 0.5 }),
    };
    const delays: number[] = [];
    const attempts: number[] = [];
    for (let i = 0; i < 7; i++) {
      const decision = nextReconnect(1006, context);
      assert.ok(!('stop' in decision));
      delays.push(decision.delayMs);
      attempts.push(decision.attempt);
      Object.assign(context, { attempt: decision.attempt, immediateRetries: decision.immediateRetries });
    }
    assert.deepEqual(attempts, [1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(delays, [50, 100, 200, 400, 500, 500, 500]);
  });

  it(`a node that keeps moving its clients: ${IMMEDIATE_RETRY_LIMIT} immediate retries, then backoff from attempt 0`, () => {
    const backoff = recording();
    const context: ReconnectContext = { attempt: 0, immediateRetries: 0, tokenIsFunction: false, backoff };
    const delays: number[] = [];
    for (let i = 0; i < IMMEDIATE_RETRY_LIMIT + 3; i++) {
      const decision = nextReconnect(CloseCode.MOVED, context);
      assert.ok(!('stop' in decision));
      delays.push(decision.delayMs);
      Object.assign(context, { attempt: decision.attempt, immediateRetries: decision.immediateRetries });
    }
    assert.deepEqual(delays, [0, 0, 0, 1000, 1001, 1002]);
    assert.deepEqual(backoff.calls, [0, 1, 2]);
  });

  it('expired tokens in a row: the first refresh is immediate, the next ones back off', () => {
    const backoff = recording();
    const context: ReconnectContext = { attempt: 0, immediateRetries: 0, tokenIsFunction: true, backoff };
    const decisions: ReconnectDecision[] = [];
    for (let i = 0; i < 3; i++) {
      const decision = nextReconnect(CloseCode.UNAUTHORIZED, context);
      assert.ok(!('stop' in decision));
      decisions.push(decision);
      Object.assign(context, { attempt: decision.attempt, immediateRetries: decision.immediateRetries });
    }
    assert.deepEqual(decisions, [retry(0, 1, 0, true), retry(1001, 2, 0, true), retry(1002, 3, 0, true)]);
  });
});

describe('nextReconnectAfterTokenFailure', () => {
  it('backs off even on the first attempt, and asks for a fresh token again', () => {
    const backoff = recording();
    assert.deepEqual(
      nextReconnectAfterTokenFailure({ attempt: 0, immediateRetries: 0, tokenIsFunction: true, backoff }),
      retry(1000, 1, 0, true),
    );
    assert.deepEqual(
      nextReconnectAfterTokenFailure({ attempt: 4, immediateRetries: 2, tokenIsFunction: true, backoff }),
      retry(1004, 5, 2, true),
    );
    assert.deepEqual(backoff.calls, [0, 4]);
  });
});
