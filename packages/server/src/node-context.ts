import type { Logger } from 'pino';
import type { StreamPosition, SubscriptionState } from '@switchboard/protocol';
import type { Hub } from './hub.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeOptions } from './options.js';
import type { PresenceStore } from './presence/presence-store.js';
import type { Publication, PublicationInput } from './publication.js';
import type { Session } from './session/session.js';

/** Where a publication came from, for metrics. */
export type PublishSource = 'ws' | 'http';

/** What sessions and the HTTP API need of their node: its services, not the node itself. */
export interface NodeContext {
  readonly nodeId: string;
  readonly options: NodeOptions;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly hub: Hub;
  readonly presence: PresenceStore;
  /** Appends to history and hands to the broker. @throws SwitchboardError `unavailable`. */
  publish(channel: string, input: PublicationInput, source: PublishSource): Promise<Publication>;
  /** Where delivery of `channel` starts for a subscriber, and what to replay first. */
  recover(channel: string, since: StreamPosition | undefined): Promise<{ state: SubscriptionState; replay: Publication[] }>;
  /** Records the session in the channel's presence; announces a `join` for a user's first session. */
  presenceJoin(session: Session, channel: string): void;
  /** Removes the session from the channel's presence; announces a `leave` for a user's last session. */
  presenceLeave(session: Session, channel: string): void;
  /** Called once when a session is gone, with the channels it was in. */
  sessionGone(session: Session, channels: string[]): Promise<void>;
}
