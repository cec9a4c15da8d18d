/**
 * The bench's `--loop-trace`: a real Node process with the preload records a turn it spent busy as a
 * stall, and the reader counts it within the phase's window only, per traced process.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readStalls } from '../../../bench/lib/stalls.js';

const PRELOAD = pathToFileURL(fileURLToPath(new URL('../../../bench/lib/loop-trace.mjs', import.meta.url))).href;
const dir = mkdtempSync(join(tmpdir(), 'sb-loop-trace-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('bench loop trace', () => {
  it('records a 40 ms busy turn of a real process as one stall of about that length', () => {
    // Idle a little, hold the loop for 40 ms, then idle past the preload's half-second flush.
    const script = `setTimeout(() => { const end = Date.now() + 40; while (Date.now() < end); setTimeout(() => {}, 1200); }, 100);`;
    const from = Date.now();
    const run = spawnSync(process.execPath, ['--import', PRELOAD, '-e', script], {
      env: { ...process.env, BENCH_LOOP_TRACE_DIR: dir },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const stalls = readStalls(dir, [run.pid!], from, Date.now());
    assert.ok(stalls, 'the process left a trace');
    assert.equal(stalls.processes, 1);
    assert.ok(stalls.stalls >= 1, `stalls: ${JSON.stringify(stalls)}`);
    assert.ok(stalls.longestMs >= 30 && stalls.longestMs < 1000, `longest: ${stalls.longestMs} ms`);
  });

  it('counts only the window, averages over the traced processes and skips processes without a trace', () => {
    writeFileSync(join(dir, '101.log'), '1000 start 0\n1500 stall 10.0\n2500 stall 4.0\n2600 gc 3.0\n9000 stall 50.0\n');
    writeFileSync(join(dir, '102.log'), '1000 start 0\n2000 stall 6.0\n2100 gc 5.0\n');
    const stalls = readStalls(dir, [101, 102, 103], 1400, 3000);
    assert.deepEqual(stalls, { processes: 2, stalls: 1.5, stallMs: 10, longestMs: 10, gcPauses: 1, gcMs: 4 });
    assert.equal(readStalls(dir, [103], 0, 10_000), undefined);
  });
});
