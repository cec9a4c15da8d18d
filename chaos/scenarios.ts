/**
 * The fault scenarios. Each builds its system, puts recording clients on it through the gateway,
 * publishes at a steady rate from a backend, injects its fault, lets the clients settle, and hands
 * the checker's verdict back with what it measured of its own.
 */
import { openClients, SocketPublisher as Publisher, type RecordingClient } from './actors.js';
import { judge, type Verdict } from './checker.js';
import { System, type BrokerName } from './system.js';

/** What a scenario returns. */
export interface Outcome {
  verdict: Verdict;
  /** Publications that got no 200 (refused while a node or the broker was away): never expected. */
  unacknowledged: number;
  /** Scenario-specific figures for the report. */
  notes: Record<string, number | string>;
}

export interface ScenarioContext {
  broker: BrokerName;
  quick: boolean;
}

export interface Scenario {
  id: string;
  title: string;
  /** What it guarantees, for the report. */
  guarantee: string;
  /** Brokers it runs on. */
  brokers: readonly BrokerName[];
  /** In the quick run (CI). */
  quick: boolean;
  run(ctx: ScenarioContext): Promise<Outcome>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ALL: readonly BrokerName[] = ['redis', 'nats', 'rabbitmq'];

/** Waits until every client is connected and has seen everything acknowledged (or `ms` passed). */
async function settle(clients: RecordingClient[], publisher: Publisher, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  const last = () => publisher.acked.reduce((m, a) => Math.max(m, a.offset), 0);
  while (Date.now() < deadline) {
    const top = last();
    if (clients.every((c) => c.connected && c.log.seen.some((s) => s.offset === top))) return;
    await sleep(100);
  }
}

/** Runs `fault` on a fresh system with `count` clients while a backend publishes at `rate`. */
async function withTraffic(
  ctx: ScenarioContext,
  opts: { clients: number; rate: number; beforeMs: number; afterMs: number; env?: Record<string, string>; privateRedis?: boolean },
  fault: (system: System, clients: RecordingClient[]) => Promise<Record<string, number | string>>,
): Promise<Outcome> {
  const system = new System({ broker: ctx.broker, env: opts.env ?? {}, privateRedis: opts.privateRedis ?? false });
  await system.start();
  let clients: RecordingClient[] = [];
  try {
    clients = await openClients(system.wsUrl, opts.clients, 'chaos');
    const publisher = new Publisher(() => system.live(), 'group:chaos', opts.rate);
    publisher.start();
    await sleep(opts.beforeMs);
    const notes = await fault(system, clients);
    await sleep(opts.afterMs);
    await publisher.stop();
    await settle(clients, publisher, 10_000);
    return {
      verdict: judge(
        publisher.acked,
        clients.map((c) => c.log),
      ),
      unacknowledged: publisher.failed,
      notes,
    };
  } finally {
    for (const c of clients) c.close();
    await system.stop();
  }
}

export const SCENARIOS: Scenario[] = [
  {
    id: 'R1',
    title: 'kill -9 of one of three nodes at 1,000 msg/s on one channel',
    guarantee:
      'every acknowledged message reaches every client once, in order, with the default history; the killed node’s clients are back through the gateway',
    brokers: ALL,
    quick: true,
    run: (ctx) =>
      withTraffic(ctx, { clients: 15, rate: 1000, beforeMs: 1500, afterMs: ctx.quick ? 2000 : 5000 }, async (system, clients) => {
        const victim = system.live()[1]!;
        const started = Date.now();
        await victim.kill9();
        await system.until(() => clients.every((c) => c.connected), 15_000, 'every client to be back');
        return { killed: victim.id, allBackMs: Date.now() - started };
      }),
  },
  {
    id: 'R3',
    title: 'a node stopped with SIGSTOP, then SIGCONT',
    guarantee:
      'the frozen node’s clients get everything after SIGCONT (or, if their heartbeat gave up, after reconnecting), in order, once',
    brokers: ALL,
    quick: false,
    run: (ctx) =>
      withTraffic(ctx, { clients: 30, rate: 200, beforeMs: 1000, afterMs: 3000 }, async (system) => {
        const victim = system.live()[0]!;
        const stoppedMs = ctx.quick ? 5000 : 10_000;
        victim.child.kill('SIGSTOP');
        await sleep(stoppedMs);
        victim.child.kill('SIGCONT');
        return { frozen: victim.id, stoppedMs };
      }),
  },
  {
    id: 'R4',
    title: 'clients offline for less than the recovery window (connections reset, 2 s without network)',
    guarantee: 'each client resumes from its last message: nothing lost, nothing twice',
    brokers: ALL,
    quick: true,
    run: (ctx) =>
      withTraffic(ctx, { clients: 30, rate: 500, beforeMs: 1000, afterMs: 2000 }, async (system, clients) => {
        system.proxy.cut();
        await sleep(2000);
        system.proxy.pass();
        const started = Date.now();
        await system.until(() => clients.every((c) => c.connected), 15_000, 'every client to be back');
        return { offlineMs: 2000, allBackMs: Date.now() - started };
      }),
  },
  {
    id: 'R6',
    title: 'a rolling restart of all three nodes (SIGTERM, drain spread over 2 s, start again)',
    guarantee: 'nothing lost or repeated across three drains; reconnects spread over the drain window',
    brokers: ALL,
    quick: true,
    run: (ctx) =>
      withTraffic(ctx, { clients: 30, rate: 200, beforeMs: 1000, afterMs: 1500 }, async (system, clients) => {
        const backTimes: number[] = [];
        const seen = new Set<string>();
        for (const id of ['c1', 'c2', 'c3']) {
          const node = system.live().find((n) => n.id === id)!;
          await node.stop();
          await system.restart(id);
          await system.until(() => clients.every((c) => c.connected), 15_000, 'every client to be back');
        }
        for (const c of clients)
          for (const d of c.log.drops) {
            const k = `${c.log.id}:${d.at}`;
            if (d.back !== undefined && !seen.has(k)) {
              seen.add(k);
              backTimes.push(d.back);
            }
          }
        // The busiest 250 ms of reconnections, against all of them.
        backTimes.sort((a, b) => a - b);
        let peak = 0;
        for (let i = 0, j = 0; i < backTimes.length; i++) {
          while (backTimes[i]! - backTimes[j]! > 250) j++;
          peak = Math.max(peak, i - j + 1);
        }
        return { reconnects: backTimes.length, peakReconnectsIn250ms: peak };
      }),
  },
  {
    id: 'R2',
    title: 'Redis (history, presence) and the broker restarted mid-stream',
    guarantee: 'publishes fail fast while they are away (never a silent 200); everything acknowledged arrives once, in order',
    brokers: ALL,
    quick: false,
    run: (ctx) =>
      withTraffic(ctx, { clients: 30, rate: 200, beforeMs: 1000, afterMs: 4000, privateRedis: true }, async (system) => {
        await system.redis!.stop();
        if (system.broker) await system.broker.stop();
        await sleep(2000);
        await system.redis!.start();
        if (system.broker) await system.broker.start();
        return { awayMs: 2000 };
      }),
  },
];
