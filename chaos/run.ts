/**
 * `npm run chaos` — every fault scenario on every broker, bounded and on loopback only; it stops by
 * itself and exits 1 when a scenario lost, repeated or reordered a message.
 *
 *   npm run chaos -- --quick                 the CI subset (Redis broker), under three minutes
 *   npm run chaos -- --only R1,R4 --broker nats
 *   npm run chaos -- --report chaos/results/latest.json
 *   npm run chaos -- --markdown /tmp/tables.md    a table per scenario, as in docs/reliability.md
 *   npm run chaos -- --from a.json,b.json --markdown /tmp/tables.md
 *                                           no run: the tables of saved reports (a later row wins)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { SCENARIOS, type Outcome } from './scenarios.js';
import { stopAll, type BrokerName } from './system.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    broker: { type: 'string' },
    report: { type: 'string' },
    markdown: { type: 'string' },
    from: { type: 'string' },
  },
});

// Interrupted (Ctrl-C, a timeout's SIGTERM): stop the nodes, the gateway and the private servers first.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`\n${signal}: stopping the system under test`);
    void stopAll().finally(() => process.exit(130));
  });
}

const quick = values.quick ?? false;
const brokers: BrokerName[] = values.broker
  ? values.broker === 'all'
    ? ['redis', 'nats', 'rabbitmq']
    : (values.broker.split(',') as BrokerName[])
  : quick
    ? ['redis']
    : ['redis', 'nats', 'rabbitmq'];
const only = values.only?.split(',');
const chosen = SCENARIOS.filter((s) => (only ? only.includes(s.id) : !quick || s.quick));

interface Row {
  scenario: string;
  broker: BrokerName;
  outcome?: Outcome;
  error?: string;
  seconds: number;
}

const rows: Row[] = [];
const fmt = (n: number | undefined) => (n === undefined ? '–' : String(Math.round(n)));

/** A row's figures as table cells, from "acknowledged" to "measured"; `strong` bolds lost and duplicated. */
function cells(outcome: Outcome, strong: boolean): string {
  const v = outcome.verdict;
  const b = (n: number) => (strong ? `**${n}**` : String(n));
  const notes = Object.entries(outcome.notes)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return `${v.acked} | ${outcome.unacknowledged} | ${b(v.lost)} | ${v.toldLost} | ${b(v.duplicated)} | ${v.outOfOrder} | ${v.drops} | ${fmt(v.catchUpP50Ms)} / ${fmt(v.catchUpP95Ms)} / ${fmt(v.catchUpMaxMs)} | ${notes}`;
}

for (const file of values.from?.split(',') ?? []) {
  for (const row of (JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[] }).rows) {
    const at = rows.findIndex((r) => r.scenario === row.scenario && r.broker === row.broker);
    if (at >= 0) rows[at] = row;
    else rows.push(row);
  }
}

for (const scenario of values.from ? [] : chosen) {
  for (const broker of brokers.filter((b) => scenario.brokers.includes(b))) {
    const started = Date.now();
    process.stdout.write(`${scenario.id} on ${broker}: ${scenario.title} … `);
    try {
      const outcome = await scenario.run({ broker, quick });
      const v = outcome.verdict;
      rows.push({ scenario: scenario.id, broker, outcome, seconds: (Date.now() - started) / 1000 });
      console.log(
        `acked ${v.acked}, lost ${v.lost}, told-lost ${v.toldLost}, duplicated ${v.duplicated}, out of order ${v.outOfOrder}, ` +
          `catch-up p95 ${fmt(v.catchUpP95Ms)} ms, never caught up ${v.neverCaughtUp}, live delay p50 ${fmt(v.liveDelayP50Ms)} / p99 ${fmt(v.liveDelayP99Ms)} ms, late (>10 s) ${v.liveLate} of which after a reconnect ${v.liveLateAfterReconnect} ${JSON.stringify(outcome.notes)}`,
      );
    } catch (err) {
      rows.push({ scenario: scenario.id, broker, error: (err as Error).message, seconds: (Date.now() - started) / 1000 });
      console.log(`ERROR ${(err as Error).message}`);
    }
  }
}

console.log(
  '\n| scenario | broker | acked | unacked | lost | told-lost | duplicated | out of order | drops | catch-up p50 / p95 / max (ms) | notes |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  if (!r.outcome) {
    console.log(`| ${r.scenario} | ${r.broker} | error: ${r.error} |`);
    continue;
  }
  console.log(`| ${r.scenario} | ${r.broker} | ${cells(r.outcome, false)} |`);
}

if (values.markdown) {
  const sections: string[] = [];
  for (const scenario of chosen) {
    const mine = rows.filter((r) => r.scenario === scenario.id);
    if (mine.length === 0) continue;
    const lines = [
      `### ${scenario.id}: ${scenario.title}`,
      '',
      `*Guarantee:* ${scenario.guarantee}.`,
      '',
      '| broker | acknowledged | refused | lost | told-lost | duplicated | out of order | drops | catch-up p50 / p95 / max (ms) | measured |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const r of mine) {
      if (!r.outcome) {
        lines.push(`| ${r.broker} | error: ${r.error} |`);
        continue;
      }
      lines.push(`| ${r.broker} | ${cells(r.outcome, true)} |`);
    }
    sections.push(lines.join('\n'));
  }
  mkdirSync(dirname(values.markdown), { recursive: true });
  writeFileSync(values.markdown, sections.join('\n\n') + '\n');
}

if (values.report) {
  mkdirSync(dirname(values.report), { recursive: true });
  const slim = rows.map((r) => ({ ...r, outcome: r.outcome && { ...r.outcome, verdict: { ...r.outcome.verdict, clients: undefined } } }));
  writeFileSync(values.report, JSON.stringify({ date: new Date().toISOString(), quick, rows: slim }, null, 2) + '\n');
}

const failed = rows.filter(
  (r) => r.error || (r.outcome && (r.outcome.verdict.lost > 0 || r.outcome.verdict.duplicated > 0 || r.outcome.verdict.outOfOrder > 0)),
);
if (failed.length > 0) {
  console.log(`\nFAILED: ${failed.map((r) => `${r.scenario}/${r.broker}`).join(', ')}`);
  for (const r of failed) {
    for (const c of r.outcome?.verdict.clients ?? [])
      if (c.lost > 0) console.log(`  ${r.scenario}/${r.broker} ${c.id}: lost ${c.lost}, e.g. ${c.lostSample.join(' ')}`);
  }
  process.exit(1);
}
console.log(`\n${rows.length} scenario runs: nothing lost, repeated or reordered`);
process.exit(0);
