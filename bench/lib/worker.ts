/**
 * A load-generator process. The runner forks a few of these (child_process.fork) and gives each a
 * share of the clients; it holds them, sends what it is told at the pace it is told, and records
 * what arrives. It stops by itself when the runner goes away.
 */
import { SignJWT } from 'jose';
import { openClient, type BenchClient, type ClientHooks } from './clients.js';
import { encode, newHist, record, type Histogram } from './hist.js';
import type {
  ClientSpec,
  CollectResult,
  Command,
  ConnectResult,
  ConnectSettings,
  SeedsResult,
  SendResult,
  WorkerEvent,
} from './protocol.js';
import { nowUs, sleep, waitUntil } from './util.js';

const send = (event: WorkerEvent) => {
  if (process.connected) process.send!(event);
};

let clients: BenchClient[] = [];
let open = 0;
let connectErrors = 0;

// What arrived since the last listen/collect.
let delivered = 0;
let hist: Histogram = newHist();
let firstDeliveryUs = 0;
let lastDeliveryUs = 0;
let serverErrors = 0;
let drops = 0;
let dropSamples: string[] = [];

/** Fan-out: per publication, how many of this worker's clients have it. */
let fanout: Map<number, number> | null = null;

/** Point-to-point at saturation: a receiver's message lets its pair's sender send the next. */
let saturation: { until: number; senders: Map<number, BenchClient>; to: Map<number, string>; sent: number; received: number } | null = null;

/** The seeds' test: each client waits for its own group message to come back. */
let seeds: { pending: Map<number, { intended: number; done: (ok: boolean, why?: string) => void }> } | null = null;

const hooks: ClientHooks = {
  onDelivery(client, s, t) {
    const now = nowUs();
    delivered++;
    if (firstDeliveryUs === 0) firstDeliveryUs = now;
    lastDeliveryUs = now;
    if (seeds) {
      // Only its own message ends a client's test; the group's other messages are just counted.
      if (s === client.spec.idx) {
        const entry = seeds.pending.get(s);
        if (entry) {
          record(hist, now - entry.intended);
          entry.done(true);
        }
      }
      return;
    }
    record(hist, now - t);
    if (fanout) {
      const count = (fanout.get(s) ?? 0) + 1;
      if (count >= open) {
        fanout.delete(s);
        send({ type: 'seq-done', seq: s });
      } else fanout.set(s, count);
    }
    if (saturation && client.spec.role === 'receiver') {
      saturation.received++;
      if (now < saturation.until) {
        const pair = client.spec.pair!;
        const sender = saturation.senders.get(pair);
        if (sender?.isOpen) {
          sender.sendTo(saturation.to.get(pair)!, pair, nowUs());
          saturation.sent++;
        }
      }
    }
  },
  onServerError() {
    serverErrors++;
  },
  onDrop(_client, reason) {
    open--;
    drops++;
    if (dropSamples.length < 5) dropSamples.push(reason);
    if (fanout) {
      // A client that left no longer holds up a publication's completion.
      for (const [seq, count] of fanout) {
        if (count >= open) {
          fanout.delete(seq);
          send({ type: 'seq-done', seq });
        }
      }
    }
  },
};

const tokenCache = new Map<string, string>();

/** Mints the clients' tokens up front, so signing is not counted as connection time. */
async function mintTokens(specs: ClientSpec[], secret: string): Promise<string[]> {
  const key = new TextEncoder().encode(secret);
  const exp = Math.floor(Date.now() / 1000) + 7200;
  const out: string[] = [];
  for (const spec of specs) {
    const cacheKey = `${spec.user}|${spec.group ?? ''}|${spec.admin ? 1 : 0}`;
    let token = tokenCache.get(cacheKey);
    if (!token) {
      const claims: Record<string, unknown> = {};
      if (spec.group) claims.groups = [spec.group];
      if (spec.admin) claims.role = 'admin';
      token = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(spec.user)
        .setExpirationTime(exp)
        .sign(key);
      tokenCache.set(cacheKey, token);
    }
    out.push(token);
  }
  return out;
}

function openOne(spec: ClientSpec, settings: ConnectSettings, token: string | undefined): BenchClient {
  return openClient(settings.kind, spec, hooks, { token, batch: settings.batch, timeoutMs: settings.timeoutMs });
}

/** Keeps a few distinct error messages to show in the report. */
function sampler(): { add(message: string): void; list: string[] } {
  const list: string[] = [];
  return {
    list,
    add(message: string) {
      const m = message.slice(0, 160);
      if (list.length < 5 && !list.includes(m)) list.push(m);
    },
  };
}

async function connect(cmd: Extract<Command, { op: 'connect' }>): Promise<ConnectResult> {
  const tokens = cmd.kind === 'switchboard' ? await mintTokens(cmd.specs, cmd.secret) : [];
  const h = newHist();
  const errors = sampler();
  let ok = 0;
  let failed = 0;
  const firstStartUs = nowUs();
  let lastReadyUs = firstStartUs;
  let next = 0;
  // `concurrency` lanes, each opening its next client as soon as the previous one is usable: as fast
  // as possible without flooding the listen backlog (which would only measure SYN retransmits).
  const lane = async () => {
    while (next < cmd.specs.length) {
      const i = next++;
      const start = nowUs();
      const client = openOne(cmd.specs[i]!, cmd, tokens[i]);
      try {
        await client.ready;
        ok++;
        open++;
        lastReadyUs = nowUs();
        record(h, lastReadyUs - start);
        clients.push(client);
      } catch (err) {
        failed++;
        connectErrors++;
        errors.add((err as Error).message);
        client.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cmd.concurrency, cmd.specs.length)) }, lane));
  return { ok, errors: failed, errorSamples: errors.list, firstStartUs, lastReadyUs, hist: encode(h) };
}

function resetCounters(): void {
  delivered = 0;
  hist = newHist();
  firstDeliveryUs = 0;
  lastDeliveryUs = 0;
  serverErrors = 0;
  drops = 0;
  dropSamples = [];
}

function collect(): CollectResult {
  const result: CollectResult = { delivered, hist: encode(hist), firstDeliveryUs, lastDeliveryUs, serverErrors, drops, dropSamples };
  resetCounters();
  return result;
}

/**
 * Sends at a fixed total rate: message j is due at startAt + j/rate and carries that intended time,
 * so a sender that falls behind (or a server that stalls it) shows up as latency instead of
 * silently sending less (coordinated omission). Senders take turns; with `random`, each message
 * goes to a random user of that list, else to the sender's `to`.
 */
async function sendRate(cmd: Extract<Command, { op: 'send-rate' }>): Promise<SendResult> {
  const senders = cmd.random ? clients : clients.filter((c) => c.spec.role === 'sender');
  const total = Math.round((cmd.rate * cmd.durationMs) / 1000);
  const interval = 1e6 / cmd.rate;
  let j = 0;
  let sent = 0;
  if (senders.length === 0 || total === 0) return { sent: 0, startUs: cmd.startAtUs, endUs: cmd.startAtUs };
  const hardStop = Date.now() + cmd.durationMs + 30_000;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = nowUs();
      while (j < total && cmd.startAtUs + j * interval <= now) {
        const client = senders[j % senders.length]!;
        if (client.isOpen) {
          const to = cmd.random ? cmd.random[Math.floor(Math.random() * cmd.random.length)]! : client.spec.to!;
          client.sendTo(to, j, cmd.startAtUs + j * interval);
          sent++;
        }
        j++;
      }
      if (j >= total || Date.now() > hardStop) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, Math.max(0, (cmd.startAtUs - nowUs()) / 1000));
  });
  return { sent, startUs: cmd.startAtUs, endUs: nowUs() };
}

/** Point-to-point at saturation: every pair keeps `window` messages in flight for `durationMs`. */
async function sendSaturate(cmd: Extract<Command, { op: 'send-saturate' }>): Promise<SendResult> {
  const senders = new Map<number, BenchClient>();
  const to = new Map<number, string>();
  for (const c of clients) {
    if (c.spec.role === 'sender' && c.spec.pair !== undefined) {
      senders.set(c.spec.pair, c);
      to.set(c.spec.pair, c.spec.to!);
    }
  }
  const startUs = nowUs();
  const state = { until: startUs + cmd.durationMs * 1000, senders, to, sent: 0, received: 0 };
  saturation = state;
  for (const [pair, sender] of senders) {
    for (let k = 0; k < cmd.window && sender.isOpen; k++) {
      sender.sendTo(to.get(pair)!, pair, nowUs());
      state.sent++;
    }
  }
  await sleep(cmd.durationMs);
  // What is still in flight may land; bounded, since a lost message would otherwise wait forever.
  await waitUntil(() => state.received >= state.sent, 5000);
  saturation = null;
  return { sent: state.sent, startUs, endUs: lastDeliveryUs };
}

/**
 * The seeds' test: client i starts at t0 + i·step, connects, and sends one message to its group;
 * it has passed when that message comes back to it through the group. Latency is from the intended
 * start, so a server that makes clients queue is charged for it.
 */
async function runSeeds(cmd: Extract<Command, { op: 'seeds' }>): Promise<SeedsResult> {
  const tokens = cmd.kind === 'switchboard' ? await mintTokens(cmd.specs, cmd.secret) : [];
  resetCounters();
  const state: NonNullable<typeof seeds> = { pending: new Map() };
  seeds = state;
  const errors = sampler();
  let ok = 0;
  let failed = 0;
  let lastDoneUs = 0;
  await Promise.all(
    cmd.specs.map(
      (spec, i) =>
        new Promise<void>((resolve) => {
          const intended = cmd.t0Us + spec.idx * cmd.stepUs;
          let client: BenchClient | undefined;
          let finished = false;
          const done = (success: boolean, why?: string) => {
            if (finished) return;
            finished = true;
            clearTimeout(deadline);
            state.pending.delete(spec.idx);
            if (success) {
              ok++;
              lastDoneUs = Math.max(lastDoneUs, nowUs());
            } else {
              failed++;
              connectErrors++;
              errors.add(why ?? 'failed');
            }
            resolve();
          };
          const startIn = Math.max(0, (intended - nowUs()) / 1000);
          const deadline = setTimeout(() => done(false, `no echo within ${cmd.timeoutMs} ms`), startIn + cmd.timeoutMs);
          setTimeout(() => {
            state.pending.set(spec.idx, { intended, done });
            client = openOne(spec, cmd, tokens[i]);
            client.ready.then(
              () => {
                open++;
                clients.push(client!);
                client!.publish(spec.group!, spec.idx, intended);
              },
              (err: Error) => {
                client!.close();
                done(false, err.message);
              },
            );
          }, startIn);
        }),
    ),
  );
  seeds = null;
  return { ok, errors: failed, errorSamples: errors.list, lastDoneUs, hist: encode(hist) };
}

async function closeAll(): Promise<{ closed: number }> {
  const n = clients.length;
  for (const c of clients) c.close();
  clients = [];
  open = 0;
  fanout = null;
  saturation = null;
  await sleep(100);
  return { closed: n };
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'connect':
      return connect(cmd);
    case 'listen':
      resetCounters();
      fanout = cmd.fanout ? new Map() : null;
      return { open };
    case 'collect':
      return collect();
    case 'send-rate':
      return sendRate(cmd);
    case 'send-saturate':
      return sendSaturate(cmd);
    case 'seeds':
      return runSeeds(cmd);
    case 'close':
      return closeAll();
  }
}

process.on('message', (cmd: Command) => {
  handle(cmd).then(
    (result) => send({ type: 'result', id: cmd.id, result }),
    (err: unknown) => send({ type: 'result', id: cmd.id, error: (err as Error).stack ?? String(err) }),
  );
});

// A worker never outlives its runner.
process.on('disconnect', () => process.exit(0));

let lastProgress = '';
setInterval(() => {
  const event = { type: 'progress' as const, connected: open, delivered, errors: connectErrors + drops + serverErrors };
  const key = JSON.stringify(event);
  if (key !== lastProgress) send(event);
  lastProgress = key;
}, 500).unref();
