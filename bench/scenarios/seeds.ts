/**
 * Scenario 2, the seeds' test: 5,000 clients each connect and send one group message, all starting
 * within one second (the seed's JMeter plan: 5,000 threads, 1 s ramp-up, one loop; it measured
 * 4,071/s and, at the next try, 25.5 % errors on Spring). A client passes when its own message
 * comes back to it through its group (groups of 10).
 */
import { merge, summarise } from '../lib/hist.js';
import { rounds, skippedNotes, spec, tabulate, warmUp, METRIC, type Scenario } from '../lib/kit.js';
import type { ClientSpec, SeedsResult } from '../lib/protocol.js';
import { BENCH_SECRET, RAW_WS, SOCKETIO, SWITCHBOARD } from '../lib/systems.js';
import { nowUs } from '../lib/util.js';

const GROUP_SIZE = 10;
const TIMEOUT_MS = 15_000;

export const seeds: Scenario = {
  name: 'seeds',
  number: 2,
  title: "The seeds' test",
  async run(ctx) {
    const n = ctx.opts.clients ?? (ctx.opts.quick ? 1000 : 5000);
    const spreadMs = 1000;
    const systems = [SWITCHBOARD, RAW_WS, SOCKETIO];
    const results = await rounds(ctx, `seeds ${n}`, systems, async (sys, note) => {
      await warmUp(ctx, sys);
      const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
      for (let i = 0; i < n; i++)
        perWorker[i % ctx.pool.size]!.push(spec(i, sys.urls[0]!, `u${i}`, { group: `g${Math.floor(i / GROUP_SIZE)}` }));
      const t0Us = nowUs() + 300_000;
      const stepUs = (spreadMs * 1000) / n;
      const out = await ctx.pool.all<SeedsResult>(
        (i) => ({
          op: 'seeds',
          specs: perWorker[i]!,
          kind: sys.config.kind,
          secret: BENCH_SECRET,
          batch: ctx.opts.batch,
          timeoutMs: TIMEOUT_MS,
          t0Us,
          stepUs,
        }),
        spreadMs + TIMEOUT_MS + 60_000,
      );
      const ok = out.reduce((a, r) => a + r.ok, 0);
      const errors = out.reduce((a, r) => a + r.errors, 0);
      for (const s of new Set(out.flatMap((r) => r.errorSamples))) note(`error: ${s}`);
      const lastDone = Math.max(...out.map((r) => r.lastDoneUs));
      const seconds = (lastDone - t0Us) / 1e6;
      const lat = summarise(merge(out.map((r) => r.hist)));
      return { rate: ok / seconds, seconds, errors, errorPct: (100 * errors) / n, p50: lat.p50, p99: lat.p99 };
    });
    return [
      tabulate(
        {
          name: 'seeds',
          scenario: 'seeds',
          title: `2. The seeds' test: ${n.toLocaleString('en')} clients connect and send one group message within one second`,
          what: `Client i starts at i/${n} s (a 1 s ramp, as the seed's JMeter plan), connects, and publishes one message to its group of ${GROUP_SIZE}; it passes when that message comes back to it through the group. Errors: failed connections and messages not back within ${TIMEOUT_MS / 1000} s. Rate = passed clients ÷ time from the first start to the last pass. Latency is from the client's scheduled start to its echo.`,
          size: `${n.toLocaleString('en')} clients, groups of ${GROUP_SIZE}, ramp 1 s`,
          metrics: [
            { key: 'rate', label: 'clients/s', unit: '/s', better: 'higher' },
            { key: 'seconds', label: 'time', unit: 's', better: 'lower' },
            METRIC.errors,
            { key: 'errorPct', label: 'error rate', unit: '%', better: 'lower' },
            { key: 'p50', label: 'start → echo p50', unit: 'ms', better: 'lower' },
            { key: 'p99', label: 'start → echo p99', unit: 'ms', better: 'lower' },
          ],
          primary: 'rate',
          notes: [
            ...skippedNotes(ctx, systems),
            'The seed (Spring, JMeter) measured 4,071/s with 0 errors at 5,000 threads in 1 s, and 25.5 % errors when it ran again.',
          ],
        },
        results,
      ),
    ];
  },
};
