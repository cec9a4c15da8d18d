/**
 * The channel service without sockets: the recovery rule (`canRecover`) as a table, and what a
 * failing publication path does — every publish answered `unavailable`, every failure counted,
 * but one log line per kind and second, not one per publication.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ChannelService, canRecover } from '../src/channel-service.js';
import { MemoryHistory } from '../src/history/memory-history.js';
import { NodeMetrics } from '../src/metrics.js';
import { PublishFailure, type PublicationPath } from '../src/publish/publication-path.js';

describe('canRecover', () => {
  const page = { epoch: 'e', offset: 10, firstOffset: 4 };
  const cases: [string, { epoch: string; offset: number }, boolean][] = [
    ['up to date', { epoch: 'e', offset: 10 }, true],
    ['behind, all kept', { epoch: 'e', offset: 5 }, true],
    ['behind, the next one is the first kept', { epoch: 'e', offset: 3 }, true],
    ['behind past what is kept', { epoch: 'e', offset: 2 }, false],
    ['another epoch', { epoch: 'other', offset: 10 }, false],
    ['ahead of the channel (a position from elsewhere)', { epoch: 'e', offset: 11 }, false],
  ];
  for (const [name, since, want] of cases) it(name, () => assert.equal(canRecover(since, page, 100), want));
  it('further behind than the limit', () => assert.equal(canRecover({ epoch: 'e', offset: 5 }, page, 4), false));
});

describe('ChannelService publish failures', () => {
  it('answers each with unavailable, counts each, and logs one line per second with how many it left out', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({ write: (c: Buffer, _e, done) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), done()) }),
    );
    const metrics = new NodeMetrics('t', false);
    const failing: PublicationPath = {
      publish: async () => {
        throw new PublishFailure('broker', 'broker unavailable: nothing was published', new Error('link down'));
      },
    };
    const history = new MemoryHistory({ historySize: 10, historyTtlMs: 60_000, historyMetaTtlMs: 60_000, idempotencyWindowMs: 60_000 });
    const service = new ChannelService({ publication: failing, history, maxRecoveryMessages: 100, metrics, log });
    const input = { from: null, topic: 't', data: 1, ts: Date.now() };
    for (let i = 0; i < 50; i++)
      await assert.rejects(service.publish('group:g', input, 'http'), {
        code: 'unavailable',
        message: 'broker unavailable: nothing was published',
      });
    assert.equal(lines.length, 1, 'one line for 50 failures within a second');
    assert.deepEqual(
      [lines[0]!.component, lines[0]!.msg, (lines[0]!.err as { message: string }).message],
      ['broker', 'publish failed', 'link down'],
    );
    assert.match(await metrics.registry.metrics(), /switchboard_engine_errors_total\{component="broker",node="t"\} 50/);
    await new Promise((r) => setTimeout(r, 1050));
    await assert.rejects(service.publish('group:g', input, 'http'));
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.suppressed, 49, 'the next line says how many were left out');
    await history.close();
  });
});
