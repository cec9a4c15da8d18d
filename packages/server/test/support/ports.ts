/**
 * Free TCP ports on 127.0.0.1, for processes that must be told a port up front (a node process,
 * nginx, redis-server, `switchboard dev --port`). A port is only known to have been free a moment
 * ago: whoever uses it should start listening soon after.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port that was free on 127.0.0.1 a moment ago, picked by the OS (from the ephemeral range). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** True when `port` can be listened on at 127.0.0.1 right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Where the search for consecutive ports starts. */
const LOWEST = 20_000;

/** The lowest port of the OS's ephemeral range (Linux: ip_local_port_range; 32768 elsewhere). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > LOWEST) return low;
  } catch {
    // Not Linux: assume Linux's default below.
  }
  return 32768;
}

/**
 * A base port such that `base`, `base + 1`, …, `base + count - 1` are all free on 127.0.0.1, for
 * a command that takes one port and counts up from it (`switchboard dev --nodes N --port P`). The
 * ports are chosen at random between 20000 and the start of the ephemeral range, so that the
 * outgoing connections of other tests cannot take them between the check and the use.
 */
export async function freeConsecutivePorts(count: number, attempts = 50): Promise<number> {
  const high = ephemeralLow(); // exclusive
  if (!Number.isInteger(count) || count < 1 || count > high - LOWEST) throw new RangeError(`cannot look for ${count} consecutive ports`);
  for (let attempt = 0; attempt < attempts; attempt++) {
    const base = LOWEST + Math.floor(Math.random() * (high - LOWEST - count + 1));
    const free = await Promise.all(Array.from({ length: count }, (_, i) => isPortFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found between ${LOWEST} and ${high - 1} in ${attempts} attempts`);
}
