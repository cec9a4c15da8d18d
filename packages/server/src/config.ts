import { readFileSync } from 'node:fs';
import { OPTION_SPECS, OptionsError, resolveOptions, type NodeOptions, type NodeOptionsInput } from './options.js';

/** Where option values come from, highest precedence first: flags, environment, config file. */
export interface ConfigSources {
  /** Parsed command-line flags, keyed by option name (`heartbeatIntervalMs`). */
  flags?: Record<string, unknown>;
  /** Environment (defaults to none; pass `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Path to a JSON config file whose keys are option names. */
  file?: string | undefined;
}

/**
 * Reads options from flags, then env names, then a JSON config file, and resolves them.
 * @throws OptionsError naming the option (or file) to fix.
 */
export function loadConfig(sources: ConfigSources): NodeOptions {
  return resolveOptions(collectConfig(sources));
}

/** The raw option values from every source, before validation. */
export function collectConfig(sources: ConfigSources): NodeOptionsInput {
  const fromFile = sources.file ? readConfigFile(sources.file) : {};
  const input: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(OPTION_SPECS)) {
    const flag = sources.flags?.[key];
    const env = sources.env?.[spec.env];
    if (flag !== undefined) input[key] = flag;
    else if (env !== undefined && env !== '') input[key] = env;
    else if (fromFile[key] !== undefined) input[key] = fromFile[key];
  }
  return input;
}

function readConfigFile(path: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new OptionsError(`config file ${path}: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OptionsError(`config file ${path}: expected a JSON object of options`);
  }
  const unknown = Object.keys(value).filter((k) => !Object.hasOwn(OPTION_SPECS, k));
  if (unknown.length > 0) {
    throw new OptionsError(`config file ${path}: unknown option ${unknown.join(', ')} (see docs/config.md)`);
  }
  return value as Record<string, unknown>;
}
