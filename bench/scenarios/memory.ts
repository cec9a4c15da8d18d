/**
 * Scenario 5, memory per idle connection: the server's resident memory with N idle clients, less
 * its resident memory before they came, divided by N.
 */
import { connectAll, rounds, skippedNotes, spec, tabulate, warmUp, METRIC, type Scenario } from '../lib/kit.js';
import { rssKiB } from '../lib/proc.js';
import type { ClientSpec } from '../lib/protocol.js';
import { RAW_WS, SOCKETIO, SWITCHBOARD } from '../lib/systems.js';
import { sleep } from '../lib/util.js';

export const memory: Scenario = {
  name: 'memory',
  number: 5,
  title: 'Memory per idle connection',
  async run(ctx) {
    const n = ctx.opts.clients ?? (ctx.opts.quick ? 2000 : 10_000);
    const settleMs = ctx.opts.quick ? 1500 : 3000;
    const systems = [SWITCHBOARD, RAW_WS, SOCKETIO];
    const results = await rounds(ctx, `memory ${n}`, systems, async (sys, note) => {
      await warmUp(ctx, sys);
      await sleep(settleMs);
      const before = rssKiB(sys.pids[0]!);
      const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
      for (let i = 0; i < n; i++) perWorker[i % ctx.pool.size]!.push(spec(i, sys.urls[0]!, `idle${i}`));
      const c = await connectAll(ctx, sys.config.kind, perWorker);
      if (c.errors > 0) note(`${c.errors} clients failed to connect (${c.errorSamples.join('; ')})`);
      await sleep(settleMs);
      const after = rssKiB(sys.pids[0]!);
      return { perConnKiB: (after - before) / Math.max(1, c.ok), baseMiB: before / 1024, totalMiB: after / 1024, errors: c.errors };
    });
    return [
      tabulate(
        {
          name: 'memory',
          scenario: 'memory',
          title: `5. Memory per idle connection, ${n.toLocaleString('en')} connections`,
          what: `Server RSS (/proc/<pid>/status VmRSS) after ${n.toLocaleString('en')} clients connected and sat idle for ${settleMs / 1000} s, minus RSS before they came (after a warm-up of 100 connections), divided by the number connected. Switchboard sessions are subscribed to their user channel and broadcast, with presence recorded.`,
          size: `${n.toLocaleString('en')} idle connections`,
          metrics: [
            { key: 'perConnKiB', label: 'memory per connection', unit: 'KiB', better: 'lower' },
            { key: 'baseMiB', label: 'RSS before', unit: 'MiB', better: 'none' },
            { key: 'totalMiB', label: 'RSS with clients', unit: 'MiB', better: 'lower' },
            METRIC.errors,
          ],
          primary: 'perConnKiB',
          notes: skippedNotes(ctx, systems),
        },
        results,
      ),
    ];
  },
};
