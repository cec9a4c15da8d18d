/**
 * A worker of the client pool (`client-pool.ts`): holds its share of recording clients, carries out
 * what the scenario asks of them, reports each one's connects and drops, and ships their logs.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { RecordingClient } from './actors.js';
import { hasSeenLatest, type Acked } from './checker.js';
import { encodeLogs, type PoolCommand, type PoolEvent } from './pool-wire.js';

const clients = new Map<string, RecordingClient>();
/** Everyone this worker held, in order (those that left too: their logs are judged). */
const all: RecordingClient[] = [];
const loopDelay = monitorEventLoopDelay({ resolution: 20 });
loopDelay.enable();
const currentLoad = () => ({ delayP99Ms: Math.round(loopDelay.percentile(99) / 1e6), delayMaxMs: Math.round(loopDelay.max / 1e6) });
/** The delay over the publishing window, once it ended. */
let windowLoad: ReturnType<typeof currentLoad> | undefined;

const tell = (event: PoolEvent) => process.send!(event);

// Connects and drops, sent a few at a time.
const changes = new Map<string, boolean>();
let flush: NodeJS.Timeout | undefined;
function changed(id: string, connected: boolean): void {
  changes.set(id, connected);
  flush ??= setTimeout(() => {
    flush = undefined;
    tell({ op: 'state', changes: [...changes] });
    changes.clear();
  }, 20);
}

function place(url: string, id: string, groups: string[], personal: boolean): RecordingClient {
  const client = new RecordingClient(url, id, groups, personal);
  client.sdk.events.on('connected', () => changed(id, true));
  client.sdk.events.on('disconnected', () => changed(id, false));
  clients.set(id, client);
  all.push(client);
  return client;
}

function positionsOf(latest: [channel: string, epoch: string, offset: number][]): Map<string, Acked> {
  return new Map(latest.map(([channel, epoch, offset]) => [channel, { channel, epoch, offset, at: 0 }]));
}

async function run(command: PoolCommand): Promise<unknown> {
  switch (command.op) {
    case 'open':
      // A few at a time, as an app's users arrive.
      for (let i = 0; i < command.clients.length; i += 20) {
        const batch = command.clients.slice(i, i + 20).map((c) => place(command.url, c.id, c.groups, command.personal));
        await Promise.all(batch.map((c) => c.ready()));
      }
      return undefined;
    case 'add':
      place(command.url, command.id, command.groups, command.personal);
      return undefined;
    case 'drop':
      clients.get(command.id)?.dropConnection();
      return undefined;
    case 'leave': {
      const client = clients.get(command.id);
      clients.delete(command.id);
      if (command.until) void client?.leaveAfter(positionsOf(command.until.latest), command.until.at);
      else client?.leave();
      return undefined;
    }
    case 'lagging': {
      const latest = positionsOf(command.latest);
      let lagging = 0;
      for (const c of clients.values()) if (!hasSeenLatest(c.log, latest)) lagging++;
      return lagging;
    }
    case 'window':
      if (command.edge === 'start') loopDelay.reset();
      else windowLoad = currentLoad();
      return undefined;
    case 'logs':
      return encodeLogs(
        all.map((c) => c.log),
        windowLoad ?? currentLoad(),
      );
    case 'close':
      for (const c of all) c.close();
      return undefined;
  }
}

process.on('message', (command: PoolCommand) => {
  const req = 'req' in command ? command.req : undefined;
  run(command).then(
    (value) => {
      if (req === undefined) return;
      // Closed: gone once the answer is out.
      if (command.op === 'close') process.send!({ op: 'done', req, value } satisfies PoolEvent, () => process.exit(0));
      else tell({ op: 'done', req, value });
    },
    (err: unknown) =>
      req !== undefined ? tell({ op: 'failed', req, message: String(err) }) : console.error(`client worker: ${String(err)}`),
  );
});
// The scenario's process went (killed, or crashed): nothing to report to, so stop too.
process.on('disconnect', () => process.exit(0));
