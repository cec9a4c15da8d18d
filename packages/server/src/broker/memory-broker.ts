import type { Broker, BrokerHandler, BrokerMessage } from './broker.js';

/**
 * An in-process bus that several `MemoryBroker`s can share, so that nodes in one process behave
 * like a cluster (used by tests and by the embedded default, which has one node).
 */
export class MemoryBus {
  private readonly subscribers = new Map<string, Set<MemoryBroker>>();

  /** @internal */
  add(channel: string, broker: MemoryBroker): void {
    let set = this.subscribers.get(channel);
    if (!set) this.subscribers.set(channel, (set = new Set()));
    set.add(broker);
  }

  /** @internal */
  remove(channel: string, broker: MemoryBroker): void {
    const set = this.subscribers.get(channel);
    if (!set) return;
    set.delete(broker);
    if (set.size === 0) this.subscribers.delete(channel);
  }

  /** @internal */
  deliver(channel: string, message: BrokerMessage): void {
    const set = this.subscribers.get(channel);
    if (!set) return;
    for (const broker of set) broker.receive(channel, message);
  }
}

/**
 * Broker for one process. Delivery is synchronous and exactly-once to every subscribed broker on
 * the same `MemoryBus`, in publish order.
 */
export class MemoryBroker implements Broker {
  private handler: BrokerHandler | undefined;
  private closed = false;
  private readonly channels = new Set<string>();

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {}

  get ready(): boolean {
    return !this.closed;
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed || this.channels.has(channel)) return;
    this.channels.add(channel);
    this.bus.add(channel, this);
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    this.bus.remove(channel, this);
  }

  async publish(channel: string, message: BrokerMessage): Promise<void> {
    if (this.closed) throw new Error('broker closed');
    this.bus.deliver(channel, message);
  }

  /** @internal */
  receive(channel: string, message: BrokerMessage): void {
    this.handler?.(channel, message);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const channel of this.channels) this.bus.remove(channel, this);
    this.channels.clear();
  }
}
