/**
 * The fault scenarios. Each builds its system, puts recording clients on it through the gateway,
 * publishes at a steady rate from a backend, injects its fault, lets the clients settle, and hands
 * the checker's verdict back with what it measured of its own.
 */
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { token } from '../packages/server/test/helpers.js';
import { openClients, RecordingClient, SocketPublisher as Publisher } from './actors.js';
import { ClientPool } from './client-pool.js';
import { sampleMachineLoad } from './machine-load.js';
import { judge, latestAcked, LatestAcked, type Verdict } from './checker.js';
import { API_KEY, System, type BrokerName } from './system.js';

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

/** Resident memory of a process, MiB (Linux). */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** A counter's value summed over its series whose labels include `labels`, from a node's /metrics. */
async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** Samples the peak resident memory of some processes until stopped. */
function peakMemory(pids: () => (number | undefined | number[])[]): { stop(): number[]; start: number[] } {
  // An entry that is a list (a gateway's workers) counts as one, their sum.
  const rss = (entry: number | undefined | number[]) =>
    Array.isArray(entry) ? entry.reduce((n, pid) => n + rssMiB(pid), 0) : rssMiB(entry);
  const start = pids().map(rss);
  const peak = [...start];
  const timer = setInterval(() => pids().forEach((entry, i) => (peak[i] = Math.max(peak[i] ?? 0, rss(entry)))), 250);
  return {
    start,
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

/** Runs `fault` on a fresh system with `count` clients while a backend publishes at `rate`. */
async function withTraffic(
  ctx: ScenarioContext,
  opts: {
    clients: number;
    rate: number;
    beforeMs: number;
    afterMs: number;
    env?: Record<string, string>;
    privateRedis?: boolean;
    proxiedNode?: string;
  },
  fault: (system: System, clients: RecordingClient[]) => Promise<Record<string, number | string>>,
): Promise<Outcome> {
  const system = new System({
    broker: ctx.broker,
    env: opts.env ?? {},
    privateRedis: opts.privateRedis ?? false,
    ...(opts.proxiedNode ? { proxiedNode: opts.proxiedNode } : {}),
  });
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
  {
    id: 'R5',
    title: '100 clients that stop reading while 8 KB messages pour into their group',
    guarantee:
      'each stalled client is cut with 4008 once it holds the outbound limit; the nodes’ memory stays bounded; the clients that read lose nothing',
    brokers: ALL,
    quick: false,
    run: (ctx) =>
      withTraffic(ctx, { clients: 20, rate: 200, beforeMs: 1000, afterMs: 1000 }, async (system) => {
        const stalled = ctx.quick ? 30 : 100;
        const sockets: WebSocket[] = [];
        for (let i = 0; i < stalled; i++) {
          const ws = new WebSocket(`${system.gatewayWsUrl}?token=${await token(`slow${i}`, { groups: ['slow'] })}`);
          ws.on('error', () => undefined);
          await new Promise<void>((resolve, reject) => {
            ws.once('message', () => resolve());
            ws.once('close', () => reject(new Error(`stalled client ${i} was refused`)));
          });
          (ws as unknown as { _socket: { pause(): void } })._socket.pause();
          sockets.push(ws);
        }
        const nodes = system.live();
        const memory = peakMemory(() => [...nodes.map((n) => n.child.pid), system.gatewayPids()]);
        const cutBefore = (await Promise.all(nodes.map((n) => metric(n.url, 'switchboard_closes_total', 'code="4008"')))).reduce(
          (a, b) => a + b,
        );
        const flood = new Publisher(() => system.live(), 'group:slow', 60, { data: () => 'x'.repeat(8 * 1024) });
        const started = Date.now();
        flood.start();
        let cut = 0;
        try {
          await system.untilAsync(
            async () => {
              const now = await Promise.all(nodes.map((n) => metric(n.url, 'switchboard_closes_total', 'code="4008"')));
              cut = now.reduce((a, b) => a + b) - cutBefore;
              return cut >= stalled;
            },
            90_000,
            `the ${stalled} stalled clients to be cut`,
          );
        } finally {
          await flood.stop();
          for (const ws of sockets) ws.terminate();
        }
        const peak = memory.stop();
        const growth = peak.map((p, i) => p - memory.start[i]!);
        return {
          stalled,
          cut4008: cut,
          allCutMs: Date.now() - started,
          floodMessages: flood.acked.length,
          nodeRssGrowthMaxMiB: Math.round(Math.max(...growth.slice(0, -1))),
          gatewayRssGrowthMiB: Math.round(growth.at(-1)!),
        };
      }),
  },
  {
    id: 'R8a',
    title: 'half-open clients: the network between clients and gateway goes silent for 8 s (heartbeat 2 s)',
    guarantee:
      'the nodes drop the silent sessions by their heartbeat, the SDK gives up on its silent socket and reconnects once the network is back; nothing lost, nothing twice',
    brokers: ALL,
    quick: false,
    run: (ctx) =>
      withTraffic(
        ctx,
        { clients: 30, rate: 200, beforeMs: 1000, afterMs: 2000, env: { SWITCHBOARD_HEARTBEAT_INTERVAL_MS: '2000' } },
        async (system, clients) => {
          const nodes = system.live();
          const sessions = async () => (await Promise.all(nodes.map((n) => metric(n.url, 'switchboard_sessions')))).reduce((a, b) => a + b);
          const before = await sessions();
          system.proxy.blackhole();
          await sleep(8000);
          // The publisher's own session is not behind the proxy.
          const during = await sessions();
          system.proxy.pass();
          const started = Date.now();
          await system.until(() => clients.every((c) => c.connected), 20_000, 'every client to be back');
          return { silentMs: 8000, sessionsBefore: before, sessionsAfter8s: during, allBackMs: Date.now() - started };
        },
      ),
  },
  {
    id: 'R8b',
    title: 'a blackholed node: its links go silent for 10 s while it runs on (heartbeat 2 s)',
    guarantee:
      'the gateway takes the node out on a failed probe, its clients reconnect through the gateway to the others and resume; nothing lost, nothing twice',
    brokers: ALL,
    quick: false,
    run: (ctx) =>
      withTraffic(
        ctx,
        { clients: 30, rate: 200, beforeMs: 1000, afterMs: 2000, env: { SWITCHBOARD_HEARTBEAT_INTERVAL_MS: '2000' }, proxiedNode: 'c2' },
        async (system, clients) => {
          system.nodeProxy!.blackhole();
          const started = Date.now();
          let outAfterMs = -1;
          while (Date.now() - started < 10_000) {
            if (outAfterMs < 0 && !(await system.gatewayNodes()).includes('c2')) outAfterMs = Date.now() - started;
            await sleep(100);
          }
          const movedClients = clients.filter((c) => c.log.drops.length > 0).length;
          const backBeforeUnblock = clients.every((c) => c.connected);
          system.nodeProxy!.pass();
          await system.until(() => clients.every((c) => c.connected), 20_000, 'every client to be back');
          await system.untilAsync(async () => (await system.gatewayNodes()).includes('c2'), 15_000, 'the gateway to take c2 back');
          return { blackholedMs: 10_000, gatewayOutAfterMs: outAfterMs, movedClients, allBackWhileBlackholed: String(backBeforeUnblock) };
        },
      ),
  },
  {
    id: 'R7',
    title: 'soak: 5,000 connections, 2,000 msg/s (95 % to users, 5 % to groups of 50), 20 % of clients churning per minute, 5 minutes',
    guarantee:
      'every acknowledged message reaches every live session of its user or group once, in order, across churn (dropped connections resume, new users start where they joined); memory holds steady',
    brokers: ALL,
    quick: false,
    run: (ctx) => soak(ctx),
  },
];

/**
 * Processes the soak's clients are spread over, beside this one's publishers
 * (`CHAOS_SOAK_CLIENT_WORKERS` overrides). One: on two cores shared with the system under test,
 * every further process takes a share of the CPU from the cluster; see docs/reliability.md.
 */
const SOAK_WORKERS = Number(process.env.CHAOS_SOAK_CLIENT_WORKERS ?? 1);

/** The soak's gateway processes (`SWITCHBOARD_GATEWAY_WORKERS` overrides). */
const GATEWAY_WORKERS = Number(process.env.SWITCHBOARD_GATEWAY_WORKERS ?? 2);

/** R7: a steady mixed load on thousands of clients, a fifth of them churning each minute. */
async function soak(ctx: ScenarioContext): Promise<Outcome> {
  const count = ctx.quick ? 1000 : 5000;
  const minutes = ctx.quick ? 1 : 5;
  const rate = 2000;
  const groups = 100;
  const system = new System({
    broker: ctx.broker,
    env: {
      SWITCHBOARD_RATE_LIMIT_PER_SECOND: '100000',
      SWITCHBOARD_RATE_LIMIT_BURST: '100000',
      // A gateway on both cores, as it would be deployed on a two-core machine (docs/deploy.md).
      SWITCHBOARD_GATEWAY_WORKERS: String(GATEWAY_WORKERS),
    },
  });
  await system.start();
  // The clients over worker processes: this one keeps the publishers and the churn.
  const pool = new ClientPool(system.gatewayWsUrl, SOAK_WORKERS);
  try {
    const live = await pool.open(
      Array.from({ length: count }, (_, i) => ({ id: `u${i}`, groups: [`g${i % groups}`] })),
      true,
    );
    const users = live.map((c) => c.id);
    // Several backend sockets, as a backend has (one per worker), each with publications in flight.
    const sockets = 8;
    const publishers = Array.from(
      { length: sockets },
      (_, k) =>
        new Publisher(
          () => system.live(),
          (local) => {
            const seq = local * sockets + k;
            return seq % 20 === 0 ? `group:g${(seq / 20) % groups}` : `user:${users[(seq * 7919) % users.length]}`;
          },
          rate / sockets,
          { groups: Array.from({ length: groups }, (_, g) => `g${g}`), firstNode: k },
        ),
    );
    const nodes = system.live();
    const memory = peakMemory(() => [...nodes.map((n) => n.child.pid), system.gatewayPids()]);
    // The load generator (this process and the pool's): when its event loops fall seconds behind,
    // clients time out connecting and publishers fall short of the rate, whatever the cluster does.
    // Reported, so that such a run is read as the machine's limit.
    const loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
    // Where the two cores go, and whether connections wait to be accepted (see machine-load.ts).
    const load = sampleMachineLoad({
      pids: () => ({ Nodes: nodes.map((n) => n.child.pid), Gateway: system.gatewayPids(), LoadGenerator: [process.pid, ...pool.pids] }),
      ports: { Nodes: nodes.map((n) => n.port), Gateway: [system.gatewayPort] },
    });
    for (const p of publishers) p.start();
    const acked = new LatestAcked(publishers.map((p) => p.acked));
    // The load generator's delay is read over the publishing only (not the opening or the judging).
    await pool.window('start');
    loopDelay.reset();
    const started = Date.now();
    const churnPerSecond = (count * 0.2) / 60;
    let churnDebt = 0;
    let dropped = 0;
    let replaced = 0;
    let fresh = 0;
    const midRss: number[][] = [];
    while (Date.now() - started < minutes * 60_000) {
      await sleep(1000);
      if (midRss.length === 0 && Date.now() - started >= minutes * 30_000) midRss.push(nodes.map((n) => rssMiB(n.child.pid)));
      // Due by the clock, not by turns of this loop (a turn takes longer than its second under load).
      churnDebt = Math.floor(((Date.now() - started) / 1000) * churnPerSecond) - (dropped + replaced);
      for (; churnDebt >= 1; churnDebt--) {
        // A client that is connected now (one still reconnecting from its own churn is passed over).
        let i = Math.floor(Math.random() * live.length);
        for (let tries = 0; !live[i]!.connected && tries < 100; tries++) i = Math.floor(Math.random() * live.length);
        const victim = live[i]!;
        if (!victim.connected) continue;
        if ((dropped + replaced) % 2 === 0) {
          // A network drop: the SDK reconnects and resumes.
          victim.dropConnection();
          // Not picked again before its worker says it is back.
          victim.connected = false;
          dropped++;
        } else {
          // A user leaves for good, once it has what was acknowledged for it until now (a message
          // still on its way is not judged lost, nor excused by a grace); a new one arrives in the same group.
          victim.leave(acked.of(victim.channels));
          const newcomer = pool.add(`n${fresh++}`, [...victim.groups], true);
          live[i] = newcomer;
          users[i] = newcomer.id;
          replaced++;
        }
      }
    }
    await Promise.all(publishers.map((p) => p.stop()));
    await pool.window('end');
    const ownDelay = { p99: loopDelay.percentile(99), max: loopDelay.max };
    const machine = load.stop();
    // Every client back, and time for the last deliveries and replays: until each live client has
    // seen the latest acknowledged offset of each of its channels, at most 30 s (what is still
    // missing then is judged). A fixed pause judged a replay that outlasted it as a loss.
    await system.until(() => live.every((c) => c.connected), 30_000, 'every client to be connected').catch(() => undefined);
    const latest = latestAcked(publishers.flatMap((p) => p.acked));
    await system.untilAsync(async () => (await pool.lagging(latest)) === 0, 30_000, 'the last deliveries').catch(() => undefined);
    await sleep(500);
    const peak = memory.stop();
    loopDelay.disable();
    const end = nodes.map((n) => rssMiB(n.child.pid));
    const { logs, load: poolLoad } = await pool.logs();
    // How long leaving users waited for what was acknowledged for them (10 s at most, then judged).
    const waits = logs.flatMap((l) => (l.awaited && l.leftAt !== undefined ? [l.leftAt - l.awaited.at] : []));
    waits.sort((a, b) => a - b);
    return {
      verdict: judge(
        publishers.flatMap((p) => p.acked),
        logs,
      ),
      unacknowledged: publishers.reduce((n, p) => n + p.failed, 0),
      notes: {
        connections: count,
        publishedPerSecond: Math.round(publishers.reduce((n, p) => n + p.acked.length, 0) / (minutes * 60)),
        minutes,
        droppedConnections: dropped,
        usersReplaced: replaced,
        nodeRssStartMiB: Math.round(Math.max(...memory.start.slice(0, -1))),
        nodeRssMidMiB: Math.round(Math.max(...(midRss[0] ?? [0]))),
        nodeRssEndMiB: Math.round(Math.max(...end)),
        nodeRssPeakMiB: Math.round(Math.max(...peak.slice(0, -1))),
        gatewayRssPeakMiB: Math.round(peak.at(-1)!),
        leaveWaitP99Ms: Math.round(waits[Math.floor(waits.length * 0.99)] ?? 0),
        leaveWaitMaxMs: Math.round(waits.at(-1) ?? 0),
        clientWorkers: SOAK_WORKERS,
        gatewayWorkers: GATEWAY_WORKERS,
        // This process (publishers, churn) and the clients' worker, apart: a stall of either reads differently.
        publisherDelayP99Ms: Math.round(ownDelay.p99 / 1e6),
        publisherDelayMaxMs: Math.round(ownDelay.max / 1e6),
        clientWorkerDelayP99Ms: poolLoad.delayP99Ms,
        clientWorkerDelayMaxMs: poolLoad.delayMaxMs,
        ...machine,
      },
    };
  } finally {
    await pool.stop();
    await system.stop();
  }
}
