import type { MemoryBus } from './memory-transport.js';
import { MemoryTransport } from './memory-transport.js';
import { ClusterBroker } from './cluster-broker.js';
import { RedisTransport } from './redis-transport.js';
import { Router, type Routing } from './routing.js';
import type { Transport } from './transport.js';
import type { RedisLinks } from '../redis/connect.js';
import type { RingHolder } from '../registry/ring-holder.js';

/** The brokers this build has. */
export const BROKERS = ['memory', 'redis'] as const;

/** A broker's name, as `SWITCHBOARD_BROKER` takes it. */
export type BrokerName = (typeof BROKERS)[number];

/** What a broker is built from. */
export interface BrokerDeps {
  nodeId: string;
  routing: Routing;
  /** The node's view of the hash ring (hash routing). */
  ring: RingHolder;
  /** `memory`: the in-process bus, shared by the nodes of one process. @default a bus of its own */
  bus?: MemoryBus;
  /** `redis`: the engine's connections (command and subscriber) and key prefix. */
  redis?: RedisLinks;
  redisPrefix?: string;
}

/**
 * Builds the broker named `name`: the cluster protocol ({@link ClusterBroker}) over that
 * backend's transport.
 * @throws Error naming the valid choices for an unknown name, or what a backend lacks.
 */
export function createBroker(name: string, deps: BrokerDeps): ClusterBroker {
  const router = new Router(deps.routing, deps.nodeId, deps.ring);
  return new ClusterBroker({ transport: createTransport(name as BrokerName, deps), router, ring: deps.ring });
}

function createTransport(name: BrokerName, deps: BrokerDeps): Transport {
  switch (name) {
    case 'memory':
      return new MemoryTransport(deps.bus);
    case 'redis': {
      if (!deps.redis) throw new Error('broker redis needs the Redis connections of engine redis');
      return new RedisTransport({ pub: deps.redis.redis, sub: deps.redis.sub, prefix: deps.redisPrefix ?? 'sb:' });
    }
    default: {
      const unknown: never = name;
      throw new Error(`unknown broker "${String(unknown)}": use one of ${BROKERS.join(', ')}`);
    }
  }
}
