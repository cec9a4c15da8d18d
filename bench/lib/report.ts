/**
 * Writes a report: `<base>.json` (every run's figures), `<base>.md` (a table per scenario, the
 * targets of issue 10 with met / missed, the machine) and `<base>-*.svg` charts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Machine } from './proc.js';
import type { MetricDef, RowResult, ScenarioReport } from './report-types.js';
import { COLORS, chartSvg, panelsSvg, type BarChart } from './svg.js';
import { human, spread, type Spread } from './util.js';

/** Everything one invocation measured. */
export interface Report {
  date: string;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  command: string;
  machine: Machine;
  /** The server build measured: git commit, uncommitted changes under packages/, build time. */
  build: { commit: string; dirty: boolean; distMtime: string; note?: string };
  settings: { runs: number; workers: number; batch: boolean; window: number; switchboardEnv: Record<string, string> };
  scenarios: ScenarioReport[];
  targets: TargetCheck[];
}

/** One target of the issue and whether this run met it. */
export interface TargetCheck {
  target: string;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
}

// ---- targets -------------------------------------------------------------------------------

function find(reports: ScenarioReport[], name: string, row: string): RowResult | undefined {
  return reports.find((r) => r.name === name)?.rows.find((x) => x.id === row);
}

function med(row: RowResult | undefined, key: string): number {
  return row?.summary[key]?.median ?? NaN;
}

/** Median of `row` ÷ `peer`, paired run by run (the same round); NaN when either did not run. */
function pairedRatio(row: RowResult | undefined, peer: RowResult | undefined, key: string): number {
  if (!row || !peer) return NaN;
  const ratios: number[] = [];
  row.runs.forEach((run, i) => {
    const a = run[key];
    const b = peer.runs[i]?.[key];
    if (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b !== 0) ratios.push(a / b);
  });
  return spread(ratios).median;
}

function verdict(value: number, ok: (v: number) => boolean): boolean | null {
  return Number.isFinite(value) ? ok(value) : null;
}

/** The targets of issue 10 (cost per message and per connection), checked against the medians of this run. */
export function checkTargets(reports: ScenarioReport[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : 'not measured');
  /** Switchboard's value ÷ the peer's, paired run by run, against `need` (`atLeast`: ≥ need, else ≤ need). */
  const ratioTarget = (
    target: string,
    sb: RowResult | undefined,
    peer: RowResult | undefined,
    key: string,
    unit: string,
    need: number,
    atLeast = true,
  ) => {
    const r = pairedRatio(sb, peer, key);
    out.push({
      target,
      measured: Number.isFinite(r) ? `${human(med(sb, key))} vs ${human(med(peer, key))} ${unit}: ${x(r)}` : 'not measured',
      met: verdict(r, (v) => (atLeast ? v >= need : v <= need)),
    });
  };
  const one = (id: string) => find(reports, 'p2p-1', id);
  const two = (id: string) => find(reports, 'p2p', id);
  ratioTarget('Point-to-point, one node: saturation ≥ 1.5× Socket.IO', one('switchboard'), one('socketio'), 'deliveredPerS', 'msg/s', 1.5);
  ratioTarget(
    'Point-to-point, two nodes on Redis: saturation ≥ 2× Socket.IO + Redis',
    two('switchboard-redis-2'),
    two('socketio-redis-2'),
    'deliveredPerS',
    'msg/s',
    2,
  );
  for (const broker of ['nats', 'rabbitmq']) {
    ratioTarget(
      `Point-to-point, two nodes on ${broker === 'nats' ? 'NATS' : 'RabbitMQ'}: saturation ≥ 1× Socket.IO + Redis`,
      two(`switchboard-${broker}-2`),
      two('socketio-redis-2'),
      'deliveredPerS',
      'msg/s',
      1,
    );
  }
  ratioTarget('Point-to-point, one node: p99 at 5k msg/s ≤ 0.5× Socket.IO', one('switchboard'), one('socketio'), 'p99', 'ms', 0.5, false);
  ratioTarget(
    'Point-to-point, two nodes: p99 at 5k msg/s ≤ 0.5× Socket.IO + Redis',
    two('switchboard-redis-2'),
    two('socketio-redis-2'),
    'p99',
    'ms',
    0.5,
    false,
  );
  ratioTarget(
    'Point-to-point, one node: CPU per message at 5k msg/s ≤ 0.67× Socket.IO',
    one('switchboard'),
    one('socketio'),
    'fixedCpuUsPerMsg',
    'µs',
    0.67,
    false,
  );
  ratioTarget(
    'Point-to-point, two nodes: nodes + Redis CPU per message at 5k msg/s ≤ 0.5× Socket.IO + Redis',
    two('switchboard-redis-2'),
    two('socketio-redis-2'),
    'fixedCpuUsPerMsg',
    'µs',
    0.5,
    false,
  );
  const routing = reports.find((r) => r.name === 'routing');
  for (const nodes of [1, 2, 3]) {
    const sb = routing?.rows.find((r) => r.id === `switchboard-redis-${nodes}`);
    const sio = routing?.rows.find((r) => r.id === `socketio-redis-${nodes}`);
    const a = med(sb, 'p99');
    const b = med(sio, 'p99');
    out.push({
      target: `Routing scenario, ${nodes} node${nodes > 1 ? 's' : ''}: p99 no worse than Socket.IO + Redis`,
      measured: Number.isFinite(a) && Number.isFinite(b) ? `${human(a)} ms vs ${human(b)} ms` : 'not measured',
      met: Number.isFinite(a) && Number.isFinite(b) ? a <= b : null,
    });
  }
  const fan = (id: string) => find(reports, 'fanout', id);
  ratioTarget('Fan-out: server CPU per delivery ≤ 0.5× Socket.IO', fan('switchboard'), fan('socketio'), 'cpuUsPerMsg', 'µs', 0.5, false);
  for (const r of reports.filter((s) => s.scenario === 'storm')) {
    const sb = r.rows.find((row) => row.id === 'switchboard');
    const worst = sb ? Math.max(...sb.runs.map((run) => run.errors ?? NaN)) : NaN;
    out.push({
      target: `Connection storm (${r.size}): 0 errors`,
      measured: Number.isFinite(worst) ? `${worst} errors in the worst run` : 'not measured',
      met: verdict(worst, (e) => e === 0),
    });
    ratioTarget(
      `Connection storm (${r.size}): ≥ 1.5× Socket.IO's rate`,
      sb,
      r.rows.find((row) => row.id === 'socketio'),
      'rate',
      'conn/s',
      1.5,
    );
  }
  ratioTarget(
    'Memory per idle connection ≤ 1.15× raw ws',
    find(reports, 'memory', 'switchboard'),
    find(reports, 'memory', 'raw-ws'),
    'perConnKiB',
    'KiB',
    1.15,
    false,
  );
  {
    const sb = find(reports, 'seeds', 'switchboard');
    const worst = sb ? Math.max(...sb.runs.map((run) => run.errors ?? NaN)) : NaN;
    out.push({
      target: "The seeds' test: 0 errors",
      measured: Number.isFinite(worst) ? `${worst} errors in the worst run` : 'not measured',
      met: verdict(worst, (e) => e === 0),
    });
  }
  return out;
}

// ---- markdown ------------------------------------------------------------------------------

function fmt(s: Spread | undefined, m: MetricDef, runs: number): string {
  if (!s || !Number.isFinite(s.median)) return '—';
  const unit = m.unit === '%' ? '%' : m.unit && m.unit !== '/s' ? ` ${m.unit}` : m.unit;
  const v = m.key === 'errors' ? String(Math.round(s.median)) : human(s.median);
  if (runs < 2 || s.min === s.max) return `${v}${unit}`;
  const lo = m.key === 'errors' ? String(Math.round(s.min)) : human(s.min);
  const hi = m.key === 'errors' ? String(Math.round(s.max)) : human(s.max);
  return `${v}${unit} (${lo}–${hi})`;
}

function ratioCell(row: RowResult, key: string): string {
  if (row.id === row.baseline) return '1 (baseline)';
  const r = row.ratio[key];
  if (!r || !Number.isFinite(r.median)) return '—';
  const spreadText = r.min !== r.max ? ` (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : '';
  return `${r.median.toFixed(2)}×${spreadText}`;
}

/** The second comparison's cell (`row.peer`): `—` where the row has none. */
function peerCell(row: RowResult, key: string): string {
  const r = row.peer?.ratio[key];
  if (!r || !Number.isFinite(r.median)) return '—';
  const spreadText = r.min !== r.max ? ` (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : '';
  return `${r.median.toFixed(2)}×${spreadText}`;
}

function scenarioTable(s: ScenarioReport): string {
  const primary = s.metrics.find((m) => m.key === s.primary)!;
  // A column for the second comparison when some rows have one; named after the row compared with.
  const peers = [...new Set(s.rows.flatMap((r) => (r.peer ? [r.peer.label] : [])))];
  const peerHeader = peers.length ? [`${primary.label}: × ${peers.length === 1 ? peers[0] : 'peer'}`] : [];
  const header = ['System', ...s.metrics.map((m) => m.label), `${primary.label}: × baseline`, ...peerHeader];
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const row of s.rows) {
    const runs = row.runs.length;
    const name = row.family === 'switchboard' ? `**${row.label}**` : row.label;
    const cells = [name, ...s.metrics.map((m) => fmt(row.summary[m.key], m, runs)), ratioCell(row, s.primary)];
    if (peers.length) cells.push(peerCell(row, s.primary));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Metrics compared in a gateway table, when the scenario has them. */
const GATEWAY_KEYS = ['deliveredPerS', 'p50', 'p99', 'satP99', 'cpuUsPerMsg'];

/**
 * For each row through a gateway (`…-gateway`), what the gateway adds: direct and via-gateway
 * medians side by side with the paired ratio (via gateway ÷ direct), for throughput and latency.
 */
function gatewayTable(s: ScenarioReport): string | undefined {
  const lines: string[] = [];
  for (const row of s.rows.filter((r) => r.id.endsWith('-gateway'))) {
    const base = s.rows.find((r) => r.id === row.baseline);
    if (!base) continue;
    if (lines.length === 0)
      lines.push(`| Measure | ${base.label} (direct) | ${row.label} | via gateway ÷ direct |`, '| --- | ---: | ---: | ---: |');
    for (const key of GATEWAY_KEYS) {
      const m = s.metrics.find((x) => x.key === key);
      if (!m) continue;
      lines.push(
        `| ${m.label} | ${fmt(base.summary[key], m, base.runs.length)} | ${fmt(row.summary[key], m, row.runs.length)} | ${ratioCell(row, key)} |`,
      );
    }
  }
  return lines.length ? lines.join('\n') : undefined;
}

// ---- charts --------------------------------------------------------------------------------

function valueText(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  return `${human(v)}${unit === '%' || unit.startsWith('/') ? unit : unit ? ` ${unit}` : ''}`;
}

function ratioSuffix(row: RowResult, key: string): string {
  if (row.id === row.baseline) return '';
  const r = row.ratio[key]?.median;
  return r !== undefined && Number.isFinite(r) ? `  (${r.toFixed(2)}× SB)` : '';
}

function betterText(m: MetricDef): string {
  return m.better === 'higher' ? 'higher is better' : m.better === 'lower' ? 'lower is better' : '';
}

function primaryChart(s: ScenarioReport, runs: number, title?: string): BarChart {
  const m = s.metrics.find((x) => x.key === s.primary)!;
  return {
    title: title ?? `${s.title}: ${m.label}`,
    subtitle: `${runs > 1 ? `median of ${runs} runs, whiskers min–max` : 'one run'}; ${betterText(m)}`,
    rows: s.rows.map((row) => {
      const sp = row.summary[m.key]!;
      return {
        label: row.label,
        bold: row.family === 'switchboard',
        bars: [
          {
            value: sp.median,
            min: sp.min,
            max: sp.max,
            color: COLORS[row.family]!,
            text: valueText(sp.median, m.unit) + ratioSuffix(row, m.key),
          },
        ],
      };
    }),
  };
}

function seriesChart(s: ScenarioReport, chart: { title: string; metrics: string[]; unit: string }, runs: number): BarChart {
  const opacities = [1, 0.5, 0.3];
  return {
    title: chart.title,
    subtitle: `${runs > 1 ? `median of ${runs} runs, whiskers min–max` : 'one run'}; lower is better`,
    legend: chart.metrics.map((k, i) => ({ label: s.metrics.find((m) => m.key === k)?.label ?? k, color: '#444', opacity: opacities[i] })),
    rows: s.rows.map((row) => ({
      label: row.label,
      bold: row.family === 'switchboard',
      bars: chart.metrics.map((k, i) => {
        const sp = row.summary[k]!;
        return {
          value: sp.median,
          min: sp.min,
          max: sp.max,
          color: COLORS[row.family]!,
          opacity: opacities[i],
          text: valueText(sp.median, chart.unit),
        };
      }),
    })),
  };
}

// ---- headline ------------------------------------------------------------------------------

const HEADLINE: { name: string; key: string; label: string; unit: string }[] = [
  { name: 'fanout', key: 'deliveredPerS', label: 'Fan-out: delivered msg/s', unit: '/s' },
  { name: 'fanout', key: 'p99', label: 'Fan-out: latency p99', unit: 'ms' },
  { name: 'p2p-1', key: 'deliveredPerS', label: 'Point-to-point, one node: msg/s', unit: '/s' },
  { name: 'p2p-1', key: 'p99', label: 'Point-to-point, one node: p99 at 5k msg/s', unit: 'ms' },
  { name: 'p2p', key: 'deliveredPerS', label: 'Point-to-point across 2 nodes: msg/s', unit: '/s' },
  { name: 'p2p', key: 'p99', label: 'Point-to-point across 2 nodes: p99 at 5k msg/s', unit: 'ms' },
  { name: 'memory', key: 'perConnKiB', label: 'Memory per idle connection', unit: 'KiB' },
  { name: 'storm-5000', key: 'rate', label: 'Connection storm (5k): connections/s', unit: '/s' },
  { name: 'seeds', key: 'errors', label: "Seeds' test (5k in 1 s): errors", unit: '' },
];

const HEADLINE_SYSTEMS = ['switchboard', 'raw-ws', 'socketio', 'switchboard-redis-2', 'socketio-redis-2'];

/** The README's table: rows are measures, columns systems, cells median (× Switchboard). */
export function headlineTable(reports: ScenarioReport[]): string {
  const labels = new Map<string, string>();
  for (const r of reports) for (const row of r.rows) if (HEADLINE_SYSTEMS.includes(row.id)) labels.set(row.id, row.label);
  const cols = HEADLINE_SYSTEMS.filter((id) => labels.has(id));
  const lines = [`| Measure | ${cols.map((c) => labels.get(c)).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`];
  for (const h of HEADLINE) {
    const s =
      reports.find((r) => r.name === h.name) ?? (h.name.startsWith('storm') ? reports.find((r) => r.scenario === 'storm') : undefined);
    if (!s) continue;
    const cells = cols.map((id) => {
      const row = s.rows.find((x) => x.id === id);
      if (!row) return '—';
      const v = row.summary[h.key]?.median ?? NaN;
      if (!Number.isFinite(v)) return '—';
      const text = h.key === 'errors' ? String(Math.round(v)) : `${human(v)}${h.unit === '/s' ? '' : ` ${h.unit}`}`;
      const r = row.ratio[h.key]?.median;
      return row.id === row.baseline || r === undefined || !Number.isFinite(r) || h.key === 'errors' ? text : `${text} (${r.toFixed(2)}×)`;
    });
    const label = h.name.startsWith('storm') && s.name !== h.name ? `Connection storm (${s.size}): connections/s` : h.label;
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function headlineSvg(report: Report): string | undefined {
  const pick = (name: string) => report.scenarios.find((r) => r.name === name);
  const storm = pick('storm-5000') ?? report.scenarios.find((r) => r.scenario === 'storm');
  const charts: BarChart[] = [];
  const runs = report.settings.runs;
  const add = (s: ScenarioReport | undefined, title: string) => {
    if (s && s.rows.length) charts.push(primaryChart(s, runs, title));
  };
  const fan = pick('fanout');
  add(fan, `Fan-out to ${fan?.size.split(', ')[0] ?? ''}: delivered msg/s`);
  add(pick('p2p'), 'Point-to-point across 2 nodes: delivered msg/s');
  add(pick('memory'), 'Memory per idle connection (KiB)');
  add(storm, `Connection storm (${storm?.size ?? ''}): connections/s`);
  if (charts.length === 0) return undefined;
  const m = report.machine;
  return panelsSvg(
    `Switchboard vs raw ws and Socket.IO — ${report.date}${report.quick ? ' (quick)' : ''}`,
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; servers, Redis and load generator share the machine; loopback. (× SB) = value ÷ Switchboard's, same run.`,
    charts,
    2,
  );
}

// ---- writing -------------------------------------------------------------------------------

/** Writes `<base>.json`, `<base>.md` and the SVGs; returns the paths written. */
export function writeReport(report: Report, base: string): string[] {
  mkdirSync(dirname(base), { recursive: true });
  const written: string[] = [];
  const write = (path: string, text: string) => {
    writeFileSync(path, text);
    written.push(path);
  };
  const stem = basename(base);
  const runs = report.settings.runs;
  const images = new Map<string, string[]>();
  for (const s of report.scenarios) {
    if (s.rows.length === 0) continue;
    const files: string[] = [];
    write(`${base}-${s.name}.svg`, chartSvg(primaryChart(s, runs)));
    files.push(`${stem}-${s.name}.svg`);
    s.charts?.forEach((c, i) => {
      write(`${base}-${s.name}-${i + 2}.svg`, chartSvg(seriesChart(s, c, runs)));
      files.push(`${stem}-${s.name}-${i + 2}.svg`);
    });
    images.set(s.name, files);
  }
  const headline = headlineSvg(report);
  if (headline) write(`${base}-headline.svg`, headline);

  const m = report.machine;
  const ids = new Set(report.scenarios.flatMap((s) => s.rows.map((r) => r.id)));
  const has = (broker: string) => [...ids].some((id) => id.startsWith(`switchboard-${broker}-`));
  const brokers = [
    ...(has('nats') ? ['a private nats-server'] : []),
    ...(has('rabbitmq') ? ["the shared RabbitMQ server (a vhost of the bench's own)"] : []),
  ];
  const md: string[] = [];
  md.push(`# Switchboard benchmark — ${report.date}${report.quick ? ' (quick sizes)' : ''}`, '');
  md.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}, ${m.fdLimit} file descriptors per process. ` +
      `Servers, the private redis-server${brokers.length ? `, ${brokers.join(' and ')} for the rows with those brokers,` : ''} and the load generator (${report.settings.workers} worker processes) share these cores; all traffic is on loopback. ` +
      `Each figure is the median of ${runs} run${runs > 1 ? 's' : ''} per system (range in parentheses), systems interleaved run by run; ratios are paired within a round, then the median taken. ` +
      `Switchboard clients connect with ${report.settings.batch ? '`?batch=1` (as the SDK does)' : 'no batching'}.` +
      (Object.keys(report.settings.switchboardEnv).length
        ? ` Switchboard nodes ran with ${Object.entries(report.settings.switchboardEnv)
            .map(([k, v]) => `\`${k}=${v}\``)
            .join(', ')}.`
        : ''),
    '',
    `Command: \`${report.command}\` — ${report.startedAt} to ${report.finishedAt}. ` +
      `Server build: commit ${report.build.commit}${report.build.dirty ? ' with uncommitted changes under packages/' : ''}, built ${report.build.distMtime}.${report.build.note ? ` **${report.build.note}**` : ''}`,
    '',
  );
  if (headline) md.push(`![headline](${stem}-headline.svg)`, '');
  md.push(
    '## Headline',
    '',
    headlineTable(report.scenarios),
    '',
    "(×) = the system's figure ÷ Switchboard's (the two-node rows ÷ Switchboard + Redis ×2), paired run by run.",
    '',
  );
  md.push('## Targets (issue 10)', '', '| Target | Measured | Met |', '| --- | --- | --- |');
  for (const t of report.targets)
    md.push(`| ${t.target} | ${t.measured} | ${t.met === null ? 'not measured' : t.met ? 'yes' : '**no**'} |`);
  md.push('');
  for (const s of report.scenarios) {
    md.push(`## ${s.title}`, '', s.what, '', `Size: ${s.size}.`, '');
    if (s.rows.length === 0) md.push('No system ran.', '');
    else md.push(scenarioTable(s), '');
    const gw = gatewayTable(s);
    if (gw) md.push('Gateway overhead (ratios paired run by run, median and range):', '', gw, '');
    for (const img of images.get(s.name) ?? []) md.push(`![${s.name}](${img})`, '');
    const notes = [...s.notes, ...s.rows.flatMap((r) => r.errors.map((e) => `${r.label}: ${e}`))];
    if (notes.length) md.push(...notes.map((n) => `- ${n}`), '');
  }
  write(`${base}.md`, md.join('\n'));
  write(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  return written;
}
