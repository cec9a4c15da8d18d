import { createHash } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './connect.js';

/** A Lua script's source and how many of its arguments are keys (0: given per call, see `withKeys`). */
export interface ScriptSpec {
  keys: number;
  lua: string;
  /**
   * Sent as soon as called, outside ioredis's auto-pipelining: for a script its caller already
   * calls once per event-loop turn for everything of the turn, where a pipeline per call would only
   * add its objects and a tick.
   */
  direct?: boolean;
}

type Arg = string | number | Buffer;

/** Runs a defined script (EVALSHA, EVAL on NOSCRIPT); `queue` adds it to a pipeline instead. */
export interface ScriptCaller {
  (...args: Arg[]): Promise<unknown>;
  queue(pipeline: ChainableCommander, ...args: Arg[]): ChainableCommander;
  /** Runs a script defined with `keys: 0` on a number of keys known only now. */
  withKeys(keys: readonly string[], args: readonly Arg[]): Promise<unknown>;
}

/**
 * The one way Switchboard defines Lua scripts on an ioredis client. Each script becomes a client
 * command named after its source's hash, so two versions of a script never shadow each other and
 * a client shared by several components defines each script once.
 */
export function defineScripts<N extends string>(redis: RedisClient, specs: Record<N, ScriptSpec>): Record<N, ScriptCaller> {
  const out = {} as Record<N, ScriptCaller>;
  const commands = redis as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>;
  for (const [key, spec] of Object.entries(specs) as [N, ScriptSpec][]) {
    const name = `sb_${key}_${createHash('sha1').update(spec.lua).digest('hex').slice(0, 10)}`;
    // Without numberOfKeys, ioredis takes the key count from the first argument of each call.
    if (!(name in redis)) redis.defineCommand(name, spec.keys > 0 ? { numberOfKeys: spec.keys, lua: spec.lua } : { lua: spec.lua });
    // A new array: ioredis gives every client the same default one.
    const ignored = redis.options.autoPipeliningIgnoredCommands ?? [];
    if (spec.direct && !ignored.includes(name)) redis.options.autoPipeliningIgnoredCommands = [...ignored, name];
    const call = ((...args: Arg[]) => commands[name]!.apply(redis, args)) as ScriptCaller;
    call.withKeys = (keys, args) => commands[name]!.apply(redis, [keys.length, ...keys, ...args]);
    call.queue = (pipeline, ...args) => (pipeline as unknown as Record<string, (...a: Arg[]) => ChainableCommander>)[name]!(...args);
    out[key] = call;
  }
  return out;
}

/** Runs a pipeline (one round trip) and throws its first command error. */
export async function execPipeline(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/**
 * A pipeline for commands whose keys may lie in several hash slots. On one Redis it is ioredis's
 * pipeline (one round trip). A cluster's pipeline must keep to one shard, so there it is a stand-in
 * with the same calls that sends each command on its own when run; ioredis's auto-pipelining then
 * puts the commands of one shard in one write. `exec` answers like a pipeline's, in call order.
 */
export function slotPipeline(redis: RedisClient): ChainableCommander {
  if (!redis.isCluster) return redis.pipeline();
  const calls: (() => Promise<unknown>)[] = [];
  const commands = redis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const settle = (call: () => Promise<unknown>) =>
    call().then(
      (value): [null, unknown] => [null, value],
      (err: unknown): [unknown, null] => [err, null],
    );
  const standIn: ChainableCommander = new Proxy({} as ChainableCommander, {
    get(_, name) {
      if (name === 'exec') return () => Promise.all(calls.map(settle));
      if (name === 'length') return calls.length;
      if (typeof name !== 'string' || typeof commands[name] !== 'function') return undefined;
      return (...args: unknown[]) => {
        calls.push(() => commands[name]!.apply(redis, args));
        return standIn;
      };
    },
  });
  return standIn;
}
