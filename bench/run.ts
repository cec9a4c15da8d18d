/**
 * The benchmark suite: Switchboard (alone, and on two nodes with Redis, RabbitMQ or NATS between
 * them) against raw ws and Socket.IO (alone and on the Redis adapter), in one run on one machine,
 * reported as medians, ranges and ratios.
 *
 *   npm run bench -- --quick                 the whole suite at small sizes (CI), report in bench/results/quick-latest.*
 *   npm run bench                            full sizes, 3 runs per system, report in bench/results/<date>.*
 *   npm run bench -- --only fanout --runs 5  one scenario (name or number, comma-separated)
 *
 * Run `npm run bench -- --help` for every option.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Progress, type BenchContext, type BenchOptions } from './lib/kit.js';
import { WorkerPool } from './lib/pool.js';
import { describeMachine } from './lib/proc.js';
import { checkTargets, writeReport, type Report } from './lib/report.js';
import type { ScenarioReport } from './lib/report-types.js';
import { ServerEnv } from './lib/systems.js';
import { isoDate } from './lib/util.js';
import { SCENARIOS } from './scenarios/index.js';

const HELP = `Usage: npm run bench -- [options]      (or: switchboard bench [options])

  --quick               small sizes, 1 run per system: the whole suite in about 2-3 minutes
  --only <names>        scenarios to run, by name or number: ${SCENARIOS.map((s) => `${s.number} ${s.name}`).join(', ')}
  --runs <n>            runs per system (default 3; 1 with --quick); the report gives median and range
  --systems <ids>       only these systems: switchboard, raw-ws, socketio, switchboard-redis-N[-broadcast], switchboard-redis-2-gateway,
                        switchboard-rabbitmq-2, switchboard-nats-2, switchboard-redis-2[-pg][-inbox], socketio-redis-N
  --clients <n>         override each scenario's size (clients, subscribers, pairs or users)
  --duration <seconds>  override each timed phase's length
  --window <n>          fan-out: publications in flight at saturation (default 4)
  --workers <n>         load-generator processes (default 2)
  --no-batch            Switchboard clients without ?batch=1
  --sb-env KEY=VALUE    extra environment for Switchboard nodes (repeatable), e.g. SWITCHBOARD_HEARTBEAT_INTERVAL_MS=60000
  --node-flags <flags>  Node and V8 flags for the Switchboard nodes, space-separated, e.g. "--max-semi-space-size=64"
  --cpu-prof            run Switchboard nodes with --cpu-prof; profiles go to bench/results/profiles/
  --loop-trace          every server process (Switchboard nodes and the peers) records its event-loop stalls and GC
                        pauses; the routing report says, per system, how long its servers could not run
  --redis-server <bin>  redis-server to start privately for clustered systems (default: redis-server on PATH)
  --nats-server <bin>   nats-server to start privately for switchboard-nats-N (default: /usr/sbin/nats-server or on PATH);
                        switchboard-rabbitmq-N use a vhost of their own on the RabbitMQ at 127.0.0.1:5672 (rabbitmqctl)
  --report <path>       write <path>.md/.json/-*.svg (default bench/results/<date> or bench/results/quick-latest)
  --max-minutes <n>     abort after this long (default 10 with --quick, 90 otherwise)
  --render <file.json>  measure nothing: rewrite the .md and .svg of an existing report from its JSON
  --help
`;

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Cli extends BenchOptions {
  only: string[] | undefined;
  report: string | undefined;
  cpuProf: boolean;
  loopTrace: boolean;
  nodeFlags: string[];
  redisServer: string;
  natsServer: string | undefined;
  sbEnv: Record<string, string>;
  maxMinutes: number;
  render: string | undefined;
}

function parse(argv: string[]): Cli {
  const opts: Partial<Cli> & { batch: boolean; cpuProf: boolean; loopTrace: boolean; quick: boolean; sbEnv: Record<string, string> } = {
    batch: true,
    cpuProf: false,
    loopTrace: false,
    quick: false,
    sbEnv: {},
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new UsageError(`${flag} needs a number ≥ ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case '--quick':
        opts.quick = true;
        break;
      case '--only':
        opts.only = (next() ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--runs':
        opts.runs = Math.round(num(a, next(), 1));
        break;
      case '--systems':
        opts.systems = (next() ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      case '--clients':
        opts.clients = Math.round(num(a, next(), 1));
        break;
      case '--duration':
        opts.durationMs = Math.round(num(a, next(), 0.1) * 1000);
        break;
      case '--window':
        opts.window = Math.round(num(a, next(), 1));
        break;
      case '--workers':
        opts.workers = Math.round(num(a, next(), 1));
        break;
      case '--no-batch':
        opts.batch = false;
        break;
      case '--cpu-prof':
        opts.cpuProf = true;
        break;
      case '--loop-trace':
        opts.loopTrace = true;
        break;
      case '--node-flags': {
        const flags = (next() ?? '').split(' ').filter((f) => f !== '');
        if (flags.length === 0 || flags.some((f) => !f.startsWith('--')))
          throw new UsageError('--node-flags takes flags such as "--max-semi-space-size=64"');
        opts.nodeFlags = flags;
        break;
      }
      case '--sb-env': {
        const m = /^(SWITCHBOARD_[A-Z0-9_]+)=(.*)$/.exec(next() ?? '');
        if (!m) throw new UsageError('--sb-env takes SWITCHBOARD_NAME=value');
        opts.sbEnv[m[1]!] = m[2]!;
        break;
      }
      case '--redis-server':
        opts.redisServer = next();
        break;
      case '--nats-server':
        opts.natsServer = next();
        break;
      case '--report':
        opts.report = next();
        break;
      case '--max-minutes':
        opts.maxMinutes = num(a, next(), 0.1);
        break;
      case '--render':
        opts.render = next();
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  }
  if (opts.only) {
    for (const name of opts.only) {
      if (!SCENARIOS.some((s) => s.name === name || String(s.number) === name))
        throw new UsageError(`no scenario "${name}" (${SCENARIOS.map((s) => s.name).join(', ')})`);
    }
  }
  return {
    quick: opts.quick,
    only: opts.only,
    runs: opts.runs ?? (opts.quick ? 1 : 3),
    workers: opts.workers ?? 2,
    batch: opts.batch,
    systems: opts.systems,
    clients: opts.clients,
    durationMs: opts.durationMs,
    window: opts.window ?? 4,
    report: opts.report,
    cpuProf: opts.cpuProf,
    loopTrace: opts.loopTrace,
    nodeFlags: opts.nodeFlags ?? [],
    redisServer: opts.redisServer ?? 'redis-server',
    natsServer: opts.natsServer,
    sbEnv: opts.sbEnv,
    maxMinutes: opts.maxMinutes ?? (opts.quick ? 10 : 90),
    render: opts.render,
  };
}

class UsageError extends Error {}

/** Which build of the server was measured: the commit, whether the tree had changes, the build's time. */
function buildInfo(): Report['build'] {
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  let distMtime = '';
  try {
    distMtime = statSync(join(repo, 'packages/server/dist/node.js')).mtime.toISOString();
  } catch {
    // checked before the run starts
  }
  return {
    commit: git('rev-parse', '--short', 'HEAD') || 'unknown',
    dirty: git('status', '--porcelain', '--untracked-files=no', '--', 'packages').length > 0,
    distMtime,
  };
}

async function main(): Promise<number> {
  let cli: Cli;
  try {
    cli = parse(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n\n${HELP}`);
      return 2;
    }
    throw err;
  }
  if (cli.render) {
    const path = resolve(cli.render);
    const report = JSON.parse(readFileSync(path, 'utf8')) as Report;
    report.settings.switchboardEnv ??= {};
    report.targets = checkTargets(report.scenarios);
    const written = writeReport(report, path.replace(/\.json$/, ''));
    process.stderr.write(`bench: rewrote ${written.length} files from ${path}\n`);
    return 0;
  }
  if (!existsSync(join(repo, 'packages/server/dist/cli.js'))) {
    process.stderr.write('bench: the server build is missing (packages/server/dist). Run `npm run build` first.\n');
    return 2;
  }
  const selected = SCENARIOS.filter((s) => !cli.only || cli.only.includes(s.name) || cli.only.includes(String(s.number)));
  const date = isoDate();
  const base = resolve(
    cli.report ??
      join(repo, 'bench/results', cli.quick ? 'quick-latest' : cli.only ? `${date}-${selected.map((s) => s.name).join('-')}` : date),
  );

  const env = new ServerEnv(repo, {
    redisServer: cli.redisServer,
    natsServer: cli.natsServer,
    switchboardEnv: cli.sbEnv,
    cpuProfDir: cli.cpuProf ? join(repo, 'bench/results/profiles') : undefined,
    loopTraceDir: cli.loopTrace ? mkdtempSync(join(tmpdir(), 'switchboard-loop-trace-')) : undefined,
    nodeFlags: cli.nodeFlags,
  });
  const pool = new WorkerPool(cli.workers);
  const progress = new Progress(pool);
  const ctx: BenchContext = { opts: cli, pool, env, progress, log: (line) => process.stderr.write(`\n${line}\n`) };

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    progress.stop();
    pool.close();
    await env.stopAll();
    if (env.loopTraceDir) rmSync(env.loopTraceDir, { recursive: true, force: true });
  };
  const abort = (why: string, code: number) => {
    process.stderr.write(`\nbench: ${why}; stopping every server it started\n`);
    env.killAllNow();
    pool.close();
    process.exit(code);
  };
  process.on('SIGINT', () => abort('interrupted', 130));
  process.on('SIGTERM', () => abort('terminated', 143));
  process.on('exit', () => env.killAllNow());
  const watchdog = setTimeout(() => abort(`still running after ${cli.maxMinutes} minutes (--max-minutes)`, 3), cli.maxMinutes * 60_000);
  watchdog.unref();

  const startedAt = new Date();
  const buildBefore = buildInfo();
  const scenarios: ScenarioReport[] = [];
  progress.start();
  try {
    for (const scenario of selected) {
      progress.set(`${scenario.number}. ${scenario.title}`);
      try {
        scenarios.push(...(await scenario.run(ctx)));
      } catch (err) {
        ctx.log(`scenario ${scenario.name} failed: ${(err as Error).stack ?? String(err)}`);
        scenarios.push({
          name: scenario.name,
          scenario: scenario.name,
          title: `${scenario.number}. ${scenario.title}`,
          what: '',
          size: '',
          metrics: [],
          primary: '',
          rows: [],
          notes: [`Failed: ${(err as Error).message}`],
        });
      }
    }
  } finally {
    await cleanup();
  }
  clearTimeout(watchdog);

  // What was built when the run started is what the servers ran, unless the build changed meanwhile.
  const build = buildBefore;
  if (buildInfo().distMtime !== buildBefore.distMtime) {
    build.note = 'packages/server/dist was rebuilt while this run was going on: later runs measured a different build.';
    process.stderr.write(`bench: warning: ${build.note}\n`);
  }
  const report: Report = {
    date,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    quick: cli.quick,
    command: `npm run bench --${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    machine: describeMachine(),
    build,
    settings: { runs: cli.runs, workers: cli.workers, batch: cli.batch, window: cli.window, switchboardEnv: cli.sbEnv },
    scenarios,
    targets: checkTargets(scenarios),
  };
  const written = writeReport(report, base);
  process.stderr.write(
    `bench: report written: ${written.filter((p) => p.endsWith('.md') || p.endsWith('.json')).join(', ')} (+${written.length - 2} SVG)\n`,
  );
  for (const t of report.targets) if (t.met !== null) process.stderr.write(`  ${t.met ? 'met   ' : 'MISSED'} ${t.target}: ${t.measured}\n`);
  const failed = scenarios.some((s) => s.rows.length === 0 || s.rows.some((r) => r.errors.length > 0));
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
