import type { RingHolder } from '../registry/ring-holder.js';
import type { Destination } from './transport.js';

/**
 * How publications reach nodes. `interest`: a node receives the channels it has sessions in.
 * `broadcast`: every node receives everything and drops what it has no session for. `hash`: a
 * `user:` channel goes to the node that owns the user on the hash ring (and to the channel, for
 * sessions that landed elsewhere); other channels route by interest.
 */
export type Routing = 'interest' | 'broadcast' | 'hash';

/** The routing strategies, for option validation and messages. */
export const ROUTINGS: readonly Routing[] = ['interest', 'broadcast', 'hash'];

const ALL: Destination = { kind: 'all' };

/**
 * Where a publication goes and what a node binds, for every transport: the one place that knows
 * the routing strategies. Pure but for reading the current ring.
 */
export class Router {
  private readonly own: Destination;

  constructor(
    readonly routing: Routing,
    private readonly nodeId: string,
    private readonly ring?: RingHolder,
  ) {
    if (!ROUTINGS.includes(routing)) throw new Error(`unknown routing "${String(routing)}": use ${ROUTINGS.join(', ')}`);
    if (routing === 'hash' && !ring) throw new Error('hash routing needs the ring');
    this.own = { kind: 'node', node: nodeId };
  }

  /** What a node binds from start, whatever its sessions: everything (broadcast) or its own address (hash). */
  standing(): Destination[] {
    if (this.routing === 'broadcast') return [ALL];
    if (this.routing === 'hash') return [this.own];
    return [];
  }

  /**
   * What a node binds while it has sessions in `channel`: the channel itself, unless a standing
   * binding already brings it (broadcast; hash, for the user channels this node owns).
   */
  bindingFor(channel: string): Destination | undefined {
    if (this.routing === 'broadcast' || this.owns(channel)) return undefined;
    return { kind: 'channel', channel };
  }

  /** Where a publication on `channel` is sent. */
  destinations(channel: string): Destination[] {
    if (this.routing === 'broadcast') return [ALL];
    const toChannel: Destination = { kind: 'channel', channel };
    if (this.routing === 'hash') {
      const owner = this.ring!.ownerOf(channel);
      // The owner's address, and the channel for sessions of the user on other nodes.
      if (owner !== undefined) return [{ kind: 'node', node: owner }, toChannel];
    }
    return [toChannel];
  }

  /** Hash routing: this node owns `channel` (a user channel whose user it owns on the ring). */
  private owns(channel: string): boolean {
    return this.routing === 'hash' && this.ring!.ownerOf(channel) === this.nodeId;
  }
}
