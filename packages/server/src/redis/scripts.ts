import { createHash } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';

/** A Lua script's source and how many of its arguments are keys. */
export interface ScriptSpec {
  keys: number;
  lua: string;
}

type Arg = string | number | Buffer;

/** Runs a defined script (EVALSHA, EVAL on NOSCRIPT); `queue` adds it to a pipeline instead. */
export interface ScriptCaller {
  (...args: Arg[]): Promise<unknown>;
  queue(pipeline: ChainableCommander, ...args: Arg[]): ChainableCommander;
}

/**
 * The one way Switchboard defines Lua scripts on an ioredis client. Each script becomes a client
 * command named after its source's hash, so two versions of a script never shadow each other and
 * a client shared by several components defines each script once.
 */
export function defineScripts<N extends string>(redis: Redis, specs: Record<N, ScriptSpec>): Record<N, ScriptCaller> {
  const out = {} as Record<N, ScriptCaller>;
  const commands = redis as unknown as Record<string, (...args: Arg[]) => Promise<unknown>>;
  for (const [key, spec] of Object.entries(specs) as [N, ScriptSpec][]) {
    const name = `sb_${key}_${createHash('sha1').update(spec.lua).digest('hex').slice(0, 10)}`;
    if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: spec.keys, lua: spec.lua });
    const call = ((...args: Arg[]) => commands[name]!.apply(redis, args)) as ScriptCaller;
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
