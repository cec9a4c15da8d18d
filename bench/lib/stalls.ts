/**
 * Reads what `loop-trace.mjs` recorded in the server processes of a `--loop-trace` run, over one
 * measured phase: how often and how long each server's event loop could not run, and how much of
 * that was garbage collection.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Per server process, the mean over the system's processes (and the longest stall of any). */
export interface Stalls {
  processes: number;
  /** Event-loop turns that started more than 3 ms late, per process. */
  stalls: number;
  /** Their lateness added up, ms per process. */
  stallMs: number;
  longestMs: number;
  /** GC pauses of 2 ms or more, per process. */
  gcPauses: number;
  gcMs: number;
}

/**
 * The stalls of the traced processes among `pids` (a gateway is not traced) between `fromMs` and
 * `toMs` (epoch ms); undefined when none of them was traced.
 */
export function readStalls(dir: string, pids: readonly number[], fromMs: number, toMs: number): Stalls | undefined {
  let traced = 0;
  const sum = { stalls: 0, stallMs: 0, longestMs: 0, gcPauses: 0, gcMs: 0 };
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(join(dir, `${pid}.log`), 'utf8');
    } catch {
      continue; // not a traced server
    }
    traced++;
    for (const line of text.split('\n')) {
      const [at, kind, ms] = line.split(' ');
      const when = Number(at);
      const length = Number(ms);
      if (!(when >= fromMs && when <= toMs) || !Number.isFinite(length)) continue;
      if (kind === 'stall') {
        sum.stalls++;
        sum.stallMs += length;
        sum.longestMs = Math.max(sum.longestMs, length);
      } else if (kind === 'gc') {
        sum.gcPauses++;
        sum.gcMs += length;
      }
    }
  }
  if (traced === 0) return undefined;
  return {
    processes: traced,
    stalls: sum.stalls / traced,
    stallMs: sum.stallMs / traced,
    longestMs: sum.longestMs,
    gcPauses: sum.gcPauses / traced,
    gcMs: sum.gcMs / traced,
  };
}

/** One line for a report's notes. */
export function describeStalls(s: Stalls, phaseSeconds: number): string {
  const r = (x: number) => (x >= 100 ? Math.round(x).toString() : x.toFixed(1));
  return (
    `event loop over the ${r(phaseSeconds)} s phase, per server process (mean of ${s.processes}): ` +
    `${r(s.stalls)} turns more than 3 ms late, ${r(s.stallMs)} ms late in all (longest ${r(s.longestMs)} ms); ` +
    `GC pauses of 2 ms or more: ${r(s.gcPauses)}, ${r(s.gcMs)} ms`
  );
}
