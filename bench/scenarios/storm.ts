/**
 * Scenario 1, connection storm: N clients connect as fast as the server takes them. A client counts
 * once it is usable: Switchboard's `welcome` (token verified, channels joined, presence recorded),
 * the raw peer's open, Socket.IO's `connect`.
 */
import { connectAll, cpuMeter, cpuSeconds, rounds, skippedNotes, spec, tabulate, warmUp, METRIC, type Scenario } from '../lib/kit.js';
import { rssKiB } from '../lib/proc.js';
import type { ClientSpec } from '../lib/protocol.js';
import { RAW_WS, SOCKETIO, SWITCHBOARD } from '../lib/systems.js';

/** One process may hold 20,000 file descriptors here; the server needs a few besides its sockets. */
export const FD_CEILING = 19_000;

export const storm: Scenario = {
  name: 'storm',
  number: 1,
  title: 'Connection storm',
  async run(ctx) {
    const sizes = ctx.opts.clients ? [ctx.opts.clients] : ctx.opts.quick ? [1000] : [5000, 20_000];
    const systems = [SWITCHBOARD, RAW_WS, SOCKETIO];
    const reports = [];
    for (const wanted of sizes) {
      const n = Math.min(wanted, FD_CEILING);
      const notes = skippedNotes(ctx, systems);
      if (n < wanted) {
        notes.push(
          `Asked for ${wanted.toLocaleString('en')} clients; ran ${n.toLocaleString('en')}: a process may hold at most 20,000 file descriptors on this machine (hard limit), and the server under test holds one per connection plus its own.`,
        );
      }
      const results = await rounds(ctx, `storm ${n}`, systems, async (sys, note) => {
        await warmUp(ctx, sys);
        const perWorker: ClientSpec[][] = Array.from({ length: ctx.pool.size }, () => []);
        for (let i = 0; i < n; i++) perWorker[i % ctx.pool.size]!.push(spec(i, sys.urls[0]!, `u${i}`));
        const meter = cpuMeter(ctx, sys);
        const c = await connectAll(ctx, sys.config.kind, perWorker, { concurrency: 500, timeoutMs: 30_000 });
        const cpu = meter();
        for (const s of c.errorSamples) note(`error: ${s}`);
        const total = cpuSeconds(cpu.server);
        return {
          rate: c.ok / c.seconds,
          seconds: c.seconds,
          errors: c.errors,
          p50: c.latency.p50,
          p99: c.latency.p99,
          cpuUsPerConn: (total * 1e6) / Math.max(1, c.ok),
          rssMiB: rssKiB(sys.pids[0]!) / 1024,
          genCpuPct: (100 * cpuSeconds(cpu.generator)) / cpu.seconds,
        };
      });
      reports.push(
        tabulate(
          {
            name: `storm-${n}`,
            scenario: 'storm',
            title: `1. Connection storm, ${n.toLocaleString('en')} clients`,
            what: 'Clients connect as fast as the server accepts them (500 attempts in flight, spread over the load-generator processes and over source addresses 127.0.0.2–254). Time is from the first attempt to the last client usable; rate = usable clients ÷ that time.',
            size: `${n.toLocaleString('en')} clients`,
            metrics: [
              { key: 'rate', label: 'connections/s', unit: '/s', better: 'higher' },
              { key: 'seconds', label: 'time', unit: 's', better: 'lower' },
              METRIC.errors,
              { key: 'p50', label: 'connect p50', unit: 'ms', better: 'lower' },
              { key: 'p99', label: 'connect p99', unit: 'ms', better: 'lower' },
              { key: 'cpuUsPerConn', label: 'server CPU per connection', unit: 'µs', better: 'lower' },
              { key: 'rssMiB', label: 'server RSS after', unit: 'MiB', better: 'lower' },
              METRIC.generator,
            ],
            primary: 'rate',
            notes,
          },
          results,
        ),
      );
    }
    return reports;
  },
};
