import type { Broker } from './broker/broker.js';
import { MemoryBroker } from './broker/memory-broker.js';
import type { History } from './history/history.js';
import { MemoryHistory } from './history/memory-history.js';
import type { NodeOptions } from './options.js';
import { MemoryPresenceStore } from './presence/memory-presence-store.js';
import type { PresenceStore } from './presence/presence-store.js';
import { MemoryRegistry } from './registry/memory-registry.js';
import type { Registry } from './registry/registry.js';

/** The four seams a node runs on. The node never knows which implementations it has. */
export interface Engine {
  broker: Broker;
  presence: PresenceStore;
  history: History;
  registry: Registry;
}

/**
 * Builds the engine named by the options.
 * @throws Error for an engine or broker this build does not have (never falls back silently).
 */
export function createEngine(options: NodeOptions): Engine {
  if (options.engine !== 'memory') throw new Error(`unknown engine "${String(options.engine)}"`);
  if (options.broker !== 'memory') throw new Error(`unknown broker "${String(options.broker)}"`);
  return {
    broker: new MemoryBroker(),
    presence: new MemoryPresenceStore(),
    history: new MemoryHistory({
      historySize: options.historySize,
      historyTtlMs: options.historyTtlMs,
      historyMetaTtlMs: options.historyMetaTtlMs,
      idempotencyWindowMs: options.idempotencyWindowMs,
    }),
    registry: new MemoryRegistry(),
  };
}
