/**
 * The benchmark harness works: `switchboard bench` runs the real suite runner (bench/run.ts) with a
 * tiny fan-out (50 subscribers, one run, Switchboard and Socket.IO, real server processes and
 * load-generator workers) and writes a report whose figures are real measurements.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/switchboard.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sb-bench-smoke-'));
const running = new Set<ChildProcess>();

/** Runs `switchboard bench …`; on timeout asks the runner to stop (it then stops its servers) before killing it. */
function bench(args: string[], timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHBOARD_')));
  const child = spawn(process.execPath, [BIN, 'bench', ...args], { env: clean, stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      reject(new Error(`switchboard bench ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stderr });
    });
  });
}

interface Row {
  id: string;
  runs: Record<string, number>[];
  summary: Record<string, { median: number; min: number; max: number }>;
  ratio: Record<string, { median: number }>;
  errors: string[];
}

after(() => {
  for (const child of running) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

describe('switchboard bench', () => {
  it('runs a tiny fan-out through the real runner and reports positive, consistent figures', async () => {
    const base = join(dir, 'report');
    const { code, stderr } = await bench(
      ['--only', 'fanout', '--clients', '50', '--runs', '1', '--systems', 'switchboard,socketio', '--duration', '1', '--report', base],
      60_000,
    );
    assert.equal(code, 0, stderr);
    assert.match(stderr, /report written/);

    const report = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as {
      quick: boolean;
      machine: { cpu: string; cores: number; memoryGiB: number; node: string };
      settings: { runs: number };
      scenarios: { name: string; rows: Row[] }[];
      targets: { target: string; met: boolean | null }[];
    };
    assert.equal(report.machine.node, process.version);
    assert.ok(report.machine.cores > 0 && report.machine.memoryGiB > 0 && report.machine.cpu.length > 0);
    assert.equal(report.settings.runs, 1);
    assert.deepEqual(
      report.scenarios.map((s) => s.name),
      ['fanout'],
    );

    const rows = report.scenarios[0]!.rows;
    assert.deepEqual(
      rows.map((r) => r.id),
      ['switchboard', 'socketio'],
    );
    for (const row of rows) {
      assert.deepEqual(row.errors, [], `${row.id} had failed runs`);
      assert.equal(row.runs.length, 1);
      const run = row.runs[0]!;
      assert.ok(run.deliveredPerS! > 0, `${row.id} delivered/s ${run.deliveredPerS}`);
      assert.ok(
        run.p50! > 0 && run.p99! >= run.p50! && run.max! >= run.p99!,
        `${row.id} latency p50 ${run.p50} p99 ${run.p99} max ${run.max}`,
      );
      assert.ok(run.cpuUsPerMsg! > 0, `${row.id} server CPU per delivery ${run.cpuUsPerMsg}`);
      // 50 subscribers on loopback: every publication reaches every one of them.
      assert.equal(run.lossPct, 0, `${row.id} lost messages`);
      // One run: the median is that run.
      assert.equal(row.summary.deliveredPerS!.median, run.deliveredPerS);
    }
    // Ratios are against Switchboard: 1 for itself, the quotient of the two runs for the peer.
    const [sb, sio] = rows as [Row, Row];
    assert.equal(sb.ratio.deliveredPerS!.median, 1);
    assert.ok(Math.abs(sio.ratio.deliveredPerS!.median - sio.runs[0]!.deliveredPerS! / sb.runs[0]!.deliveredPerS!) < 1e-9);

    const cpu = report.targets.find((t) => t.target.startsWith('Fan-out: server CPU per delivery ≤ 0.5× Socket.IO'));
    assert.equal(typeof cpu?.met, 'boolean', 'the fan-out CPU target is judged when both ran');
    assert.equal(
      report.targets.find((t) => t.target.startsWith('Memory per idle connection'))?.met,
      null,
      'a target not measured is said to be so',
    );

    const md = readFileSync(`${base}.md`, 'utf8');
    assert.match(md, /## 3\. Fan-out: one channel, 50 subscribers/);
    assert.match(md, /\| \*\*Switchboard\*\* \| [\d.]+k? msg\/s/);
    for (const svg of ['report-fanout.svg', 'report-fanout-2.svg', 'report-headline.svg']) {
      assert.ok(existsSync(join(dir, svg)), `${svg} written`);
      assert.match(readFileSync(join(dir, svg), 'utf8'), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
      assert.ok(md.includes(`](${svg})`), `${svg} embedded in the report`);
    }
  });

  it('rejects an unknown scenario with exit 2 and names the scenarios', async () => {
    const { code, stderr } = await bench(['--only', 'nope'], 20_000);
    assert.equal(code, 2);
    assert.match(stderr, /no scenario "nope" \(storm, seeds, fanout, p2p, memory, routing, inbox, scale\)/);
  });
});
