/**
 * What the bench's private Redis did: commands by name (`INFO commandstats`, the calls a Lua script
 * makes included) and bytes on the network both ways (`INFO stats`). Read before and after a phase;
 * {@link redisDelta} gives the difference.
 */
import { Redis } from 'ioredis';
import type { BenchContext } from './kit.js';

export interface RedisStats {
  /** Command name → calls. */
  calls: Map<string, number>;
  /** Bytes received from and sent to clients. */
  bytes: number;
}

/** The counters of the bench's Redis now; empty when the run has none. */
export async function redisStats(ctx: BenchContext): Promise<RedisStats> {
  const url = ctx.env.redisUrl;
  const calls = new Map<string, number>();
  if (!url) return { calls, bytes: 0 };
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const [commands, stats] = await Promise.all([redis.info('commandstats'), redis.info('stats')]);
    for (const m of commands.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
    const counter = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
    return { calls, bytes: counter('total_net_input_bytes') + counter('total_net_output_bytes') };
  } finally {
    redis.disconnect();
  }
}

/** The commands and bytes between two readings; `info` and the readings' own are left out. */
export function redisDelta(before: RedisStats, after: RedisStats): { calls: Map<string, number>; total: number; bytes: number } {
  const calls = new Map<string, number>();
  for (const [name, count] of after.calls) {
    const d = count - (before.calls.get(name) ?? 0);
    if (d > 0 && name !== 'info') calls.set(name, d);
  }
  return { calls, total: [...calls.values()].reduce((a, b) => a + b, 0), bytes: after.bytes - before.bytes };
}

/** `zadd 20691, pexpire 17999, …`: the most frequent commands, each divided by `per`. */
export function topCalls(calls: Map<string, number>, per: number, count = 6, digits = 0): string {
  return [...calls]
    .map(([name, n]) => [name, n / per] as const)
    .filter(([, rate]) => rate >= 10 ** -digits)
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, rate]) => `${name} ${rate.toFixed(digits)}`)
    .join(', ');
}
