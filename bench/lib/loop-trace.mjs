/**
 * Preloaded (`node --import`) into every server process of a `--loop-trace` bench run: records
 * when the process's event loop stalled and when V8 paused it for garbage collection, so a
 * scenario can say, for its measured phase only, how long each server was unable to answer.
 *
 * A 2 ms interval timer runs beside the server; a turn that starts more than
 * {@link STALL_MS} late is one stall (whatever held the loop: a long task, a GC pause, or the
 * process waiting for a core). GC pauses of at least {@link GC_MS} are recorded apart. Each line
 * of `<BENCH_LOOP_TRACE_DIR>/<pid>.log` is `<epoch ms> stall|gc <ms>`; the lines are written
 * every half second, never on the loop's hot path. The timer itself costs some CPU (500 wake-ups a
 * second), the same for every system traced.
 */
import { appendFile } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const STALL_MS = 3;
const GC_MS = 2;
const TICK_MS = 2;

const dir = process.env.BENCH_LOOP_TRACE_DIR;
if (dir) {
  const file = `${dir}/${process.pid}.log`;
  const at = () => Math.round(performance.timeOrigin + performance.now());
  // The file exists from the start, so a process that never stalls still counts as traced.
  let lines = [`${at()} start 0`];
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    const late = now - last - TICK_MS;
    last = now;
    if (late > STALL_MS) lines.push(`${at()} stall ${late.toFixed(1)}`);
  }, TICK_MS);
  tick.unref();
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if (entry.duration >= GC_MS) lines.push(`${at()} gc ${entry.duration.toFixed(1)}`);
  }).observe({ entryTypes: ['gc'] });
  const flush = setInterval(() => {
    if (lines.length === 0) return;
    const text = `${lines.join('\n')}\n`;
    lines = [];
    appendFile(file, text, () => {});
  }, 500);
  flush.unref();
}
