import { SwitchboardError } from '../errors.js';
import type { RingHolder } from '../registry/ring-holder.js';
import type { Broker, BrokerHandler, BrokerMessage } from './broker.js';
import { decode, encode, type Envelope } from './codec.js';
import type { Router } from './routing.js';
import type { Destination, Transport } from './transport.js';

/** Options of {@link ClusterBroker}. */
export interface ClusterBrokerOptions {
  /** Moves the bytes; owned by the broker (`close()` closes it). */
  transport: Transport;
  /** Where publications go and what this node binds. */
  router: Router;
  /** With hash routing, the ring whose changes move user channels between nodes. */
  ring?: RingHolder | undefined;
  /** Told, after each publish the backend took, how long it took (its confirm latency). */
  published?: ((seconds: number) => void) | undefined;
}

/**
 * The cluster protocol, written once for every transport (socket.io-adapter's `ClusterAdapter` is
 * the model): it encodes each message once ({@link encode}), asks the {@link Router} where it goes
 * and what to bind, and hands the transport bytes and destinations. What arrives is decoded and
 * passed on for the channels this node has sessions in. Its guarantees are the {@link Broker}'s,
 * given the transport's.
 */
export class ClusterBroker implements Broker {
  /** Moves the bytes (the Redis append script publishes through its addresses). */
  readonly transport: Transport;
  /** Where publications go. */
  readonly router: Router;
  private readonly ring: RingHolder | undefined;
  private readonly published: ((seconds: number) => void) | undefined;
  private handler: BrokerHandler | undefined;
  /** Channels this node receives. */
  private readonly channels = new Set<string>();
  /**
   * Hash routing: the binding each channel took of its own (none where a standing binding brings
   * it), since a ring change changes what {@link Router.bindingFor} says. With the other routings
   * it says the same every time, and a node's thousands of channels keep no copy.
   */
  private readonly bound = new Map<string, Destination>();
  private started = false;
  private closed = false;
  private unwatchRing: (() => void) | undefined;

  constructor(options: ClusterBrokerOptions) {
    this.transport = options.transport;
    this.router = options.router;
    this.ring = options.ring;
    this.published = options.published;
  }

  /** The transport's backend (`redis`, `rabbitmq`, …). */
  get name(): string {
    return this.transport.name;
  }

  get ready(): boolean {
    return !this.closed && this.transport.ready;
  }

  async start(handler: BrokerHandler): Promise<void> {
    if (this.closed) throw new Error('broker closed');
    this.handler = handler;
    if (this.started) return;
    this.started = true;
    await this.transport.start({
      bytes: (payload) => this.receive(payload),
      link: (state, detail) => this.handler?.link(state, detail),
      error: (err, what) => this.handler?.error(err, what),
    });
    for (const to of this.router.standing()) await this.transport.bind(to);
    if (this.router.routing === 'hash' && this.ring) this.unwatchRing = this.ring.onChange(() => void this.reconcile());
  }

  async subscribe(channel: string): Promise<void> {
    if (this.closed || this.channels.has(channel)) return;
    if (!this.transport.ready) throw new SwitchboardError('ERR_UNAVAILABLE', `${this.transport.name} broker unreachable`);
    // Added before the bind resolves: a transport may hand over the first bytes in the same turn.
    this.channels.add(channel);
    const binding = this.router.bindingFor(channel);
    if (!binding) return;
    try {
      await this.transport.bind(binding);
      if (this.router.routing === 'hash') this.bound.set(channel, binding);
    } catch (err) {
      this.channels.delete(channel);
      throw err;
    }
  }

  async unsubscribe(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    const binding = this.router.routing === 'hash' ? this.bound.get(channel) : this.router.bindingFor(channel);
    if (!binding) return;
    this.bound.delete(channel);
    await this.transport.unbind(binding);
  }

  async publish(channel: string, message: BrokerMessage): Promise<void> {
    if (this.closed) throw new SwitchboardError('ERR_UNAVAILABLE', 'broker closed');
    if (!this.transport.ready) throw new SwitchboardError('ERR_UNAVAILABLE', `${this.transport.name} broker unreachable`);
    const started = this.published && performance.now();
    await this.transport.send(this.router.destinations(channel), encode(channel, message));
    if (this.published) this.published((performance.now() - (started as number)) / 1000);
  }

  /** Stops delivery and closes the transport. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatchRing?.();
    this.channels.clear();
    this.bound.clear();
    this.handler = undefined;
    await this.transport.close();
  }

  private receive(payload: Buffer): void {
    const handler = this.handler;
    if (!handler) return;
    let envelope: Envelope;
    try {
      envelope = decode(payload);
    } catch (err) {
      handler.error(err, `undecodable ${this.transport.name} payload dropped`);
      return;
    }
    if (!this.channels.has(envelope.channel)) return;
    try {
      handler.message(envelope.channel, envelope.message);
    } catch (err) {
      // Thrown into the transport it would break delivery of everything after it.
      handler.error(err, `handler failed on ${envelope.channel}`);
    }
  }

  /**
   * Hash routing, after the ring changed: drop the channel binding of user channels this node now
   * owns (its own address brings them), and take one for those it no longer owns (their sessions
   * are about to move; until then they are served by interest).
   */
  private async reconcile(): Promise<void> {
    for (const channel of this.channels) {
      const want = this.router.bindingFor(channel);
      const have = this.bound.get(channel);
      try {
        if (have && !want) {
          this.bound.delete(channel);
          await this.transport.unbind(have);
        } else if (want && !have) {
          await this.transport.bind(want);
          if (this.channels.has(channel)) this.bound.set(channel, want);
          else await this.transport.unbind(want);
        }
      } catch (err) {
        this.handler?.error(err, `re-binding ${channel} after a ring change failed`);
      }
    }
  }
}
