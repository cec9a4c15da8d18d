import type { MemoryBus } from './memory-transport.js';
import { MemoryTransport } from './memory-transport.js';
import { ClusterBroker } from './cluster-broker.js';
import { RedisTransport } from './redis-transport.js';
import { Router, type Routing } from './routing.js';
import type { Transport } from './transport.js';
import type { RedisLinks } from '../redis/connect.js';
import type { BrokerName } from '../options.js';
import type { RingHolder } from '../registry/ring-holder.js';
import { NatsTransport } from './nats-transport.js';
import { RabbitMqTransport } from './rabbitmq-transport.js';

/** The brokers this build has, as `SWITCHBOARD_BROKER` takes them. */
export const BROKERS = ['memory', 'redis', 'rabbitmq', 'nats'] as const satisfies readonly BrokerName[];

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
  /** `rabbitmq`: the server. @default 'amqp://guest:guest@127.0.0.1:5672' */
  amqpUrl?: string;
  /** `nats`: the server(s). @default 'nats://127.0.0.1:4222' */
  natsUrl?: string;
  /** Told how long each publish took the backend to take (for the confirm-latency histogram). */
  published?: (seconds: number) => void;
}

export type { BrokerName };

/**
 * Builds the broker named `name`: the cluster protocol ({@link ClusterBroker}) over that
 * backend's transport.
 * @throws Error naming the valid choices for an unknown name, or what a backend lacks.
 */
export function createBroker(name: string, deps: BrokerDeps): ClusterBroker {
  const router = new Router(deps.routing, deps.nodeId, deps.ring);
  return new ClusterBroker({ transport: createTransport(name as BrokerName, deps), router, ring: deps.ring, published: deps.published });
}

function createTransport(name: BrokerName, deps: BrokerDeps): Transport {
  switch (name) {
    case 'memory':
      return new MemoryTransport(deps.bus);
    case 'redis': {
      if (!deps.redis) throw new Error('broker redis needs the Redis connections of engine redis');
      return new RedisTransport({
        pub: deps.redis.redis,
        sub: deps.redis.sub,
        prefix: deps.redisPrefix ?? 'sb:',
        sharded: deps.redis.cluster ?? false,
      });
    }
    case 'rabbitmq':
      return new RabbitMqTransport({ url: deps.amqpUrl ?? 'amqp://guest:guest@127.0.0.1:5672', nodeId: deps.nodeId });
    case 'nats':
      return new NatsTransport({ url: deps.natsUrl ?? 'nats://127.0.0.1:4222', name: `switchboard:${deps.nodeId}` });
    default: {
      const unknown: never = name;
      throw new Error(`unknown broker "${String(unknown)}": use one of ${BROKERS.join(', ')}`);
    }
  }
}
