import { SmallSet } from '../small-collections.js';
import { destinationKey, type Destination, type Transport, type TransportHandler } from './transport.js';

/**
 * An in-process bus that several {@link MemoryTransport}s share, so that nodes in one process form
 * a cluster (the in-process cluster of the tests; the embedded default has one node on its own bus).
 */
export class MemoryBus {
  /** Destination → the transports bound to it (the embedded default: one). */
  private readonly bindings = new Map<string, SmallSet<MemoryTransport>>();

  /** @internal */
  bind(key: string, transport: MemoryTransport): void {
    let set = this.bindings.get(key);
    if (!set) this.bindings.set(key, (set = new SmallSet()));
    set.add(transport);
  }

  /** @internal */
  unbind(key: string, transport: MemoryTransport): void {
    const set = this.bindings.get(key);
    if (!set?.delete(transport)) return;
    if (set.size === 0) this.bindings.delete(key);
  }

  /** @internal Hands `payload` to every transport bound to one of `to`, once each, synchronously. */
  send(to: readonly Destination[], payload: Buffer): void {
    if (to.length === 1) {
      const set = this.bindings.get(destinationKey(to[0]!));
      if (!set) return;
      // The embedded default binds one transport: no iterator per publication for it.
      const only = set.only;
      if (only) only.receive(payload);
      else for (const transport of set) transport.receive(payload);
      return;
    }
    const receivers = new Set<MemoryTransport>();
    for (const d of to) for (const transport of this.bindings.get(destinationKey(d)) ?? []) receivers.add(transport);
    for (const transport of receivers) transport.receive(payload);
  }
}

/**
 * Transport for one process: delivery is synchronous with `send` and exactly once to every
 * transport on the same {@link MemoryBus} bound to a destination, in send order. It has no link to lose.
 */
export class MemoryTransport implements Transport {
  readonly name = 'memory';
  private handler: TransportHandler | undefined;
  private readonly keys = new Set<string>();
  private closed = false;

  constructor(private readonly bus: MemoryBus = new MemoryBus()) {}

  get ready(): boolean {
    return !this.closed;
  }

  async start(handler: TransportHandler): Promise<void> {
    this.handler = handler;
  }

  async bind(to: Destination): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    const key = destinationKey(to);
    this.keys.add(key);
    this.bus.bind(key, this);
  }

  async unbind(to: Destination): Promise<void> {
    const key = destinationKey(to);
    if (this.keys.delete(key)) this.bus.unbind(key, this);
  }

  async send(to: readonly Destination[], payload: Buffer): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.bus.send(to, payload);
  }

  /** @internal */
  receive(payload: Buffer): void {
    try {
      this.handler?.bytes(payload);
    } catch (err) {
      // One node's failure must not reach the publisher or stop delivery to the other nodes.
      this.handler?.error(err, 'memory transport handler failed');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const key of this.keys) this.bus.unbind(key, this);
    this.keys.clear();
    this.handler = undefined;
  }
}
