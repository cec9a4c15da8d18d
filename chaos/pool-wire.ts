/**
 * What the client pool and its workers say to each other over IPC, and the compact form of the
 * logs they ship at the end (a soak's clients record two million deliveries: as objects, each with
 * its own channel and epoch strings, they took seconds to send and hundreds of MiB to hold).
 */
import type { ClientLog } from './checker.js';

/** This side to a worker; those with `req` are answered with `done` (or `failed`) of the same `req`. */
export type PoolCommand =
  | { op: 'open'; url: string; clients: { id: string; groups: string[] }[]; personal: boolean; req?: number }
  | { op: 'add'; url: string; id: string; groups: string[]; personal: boolean }
  | { op: 'drop'; id: string }
  /** With `until`: once the client has seen those positions, acknowledged by `at` (see RecordingClient.leaveAfter). */
  | { op: 'leave'; id: string; until?: { at: number; latest: [channel: string, epoch: string, offset: number][] } }
  | { op: 'lagging'; latest: [channel: string, epoch: string, offset: number][]; req?: number }
  | { op: 'logs'; req?: number }
  /** The event-loop delay reported with the logs is the one between `start` and `end` (the publishing window). */
  | { op: 'window'; edge: 'start' | 'end'; req?: number }
  | { op: 'close'; req?: number };

/** A worker to this side. */
export type PoolEvent =
  | { op: 'state'; changes: [id: string, connected: boolean][] }
  | { op: 'done'; req: number; value: unknown }
  | { op: 'failed'; req: number; message: string };

/** A worker's logs: every `seen` entry as four numbers (channel and epoch as indexes into `names`). */
export interface EncodedLogs {
  names: string[];
  logs: (Omit<ClientLog, 'seen'> & { seen: Float64Array })[];
  delayP99Ms: number;
  delayMaxMs: number;
}

export function encodeLogs(logs: readonly ClientLog[], load: { delayP99Ms: number; delayMaxMs: number }): EncodedLogs {
  const names: string[] = [];
  const index = new Map<string, number>();
  const ref = (name: string) => {
    let i = index.get(name);
    if (i === undefined) {
      i = names.push(name) - 1;
      index.set(name, i);
    }
    return i;
  };
  return {
    names,
    logs: logs.map(({ seen, ...rest }) => {
      const packed = new Float64Array(seen.length * 4);
      seen.forEach((s, i) => packed.set([ref(s.channel), ref(s.epoch), s.offset, s.at], i * 4));
      return { ...rest, seen: packed };
    }),
    ...load,
  };
}

export function decodeLogs(encoded: EncodedLogs): ClientLog[] {
  const { names } = encoded;
  return encoded.logs.map(({ seen: packed, ...rest }) => {
    const seen: ClientLog['seen'] = [];
    for (let i = 0; i < packed.length; i += 4)
      seen.push({ channel: names[packed[i]!]!, epoch: names[packed[i + 1]!]!, offset: packed[i + 2]!, at: packed[i + 3]! });
    return { ...rest, seen };
  });
}
