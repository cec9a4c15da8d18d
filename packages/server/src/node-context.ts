import type { Logger } from 'pino';
import type { StreamPosition, SubscriptionState } from '@switchboard/protocol';
import type { Hub } from './hub.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeOptions } from './options.js';
import type { PresenceStore } from './presence/presence-store.js';
import type { Publication, PublicationInput } from './publication.js';
import type { Session } from './session/session.js';

/** Where a publication landed; `duplicate` when its idempotency key had been seen. */
export interface PublishOutcome extends StreamPosition {
  duplicate: boolean;
}

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
  /**
   * Appends to history and hands to the broker. With an idempotency `key` (already scoped to the
   * sender), a repeat within the window is not published again and answers the original position.
   * @throws SwitchboardError `unavailable` or `bad_frame`.
   */
  publish(channel: string, input: PublicationInput, source: PublishSource, key?: string): Promise<PublishOutcome>;
  /** Where delivery of `channel` starts for a subscriber, and what to replay first. */
  recover(channel: string, since: StreamPosition | undefined): Promise<{ state: SubscriptionState; replay: Publication[] }>;
  /** Records the session in the channel's presence; announces a `join` for a user's first session. */
  presenceJoin(session: Session, channel: string): Promise<void>;
  /** Removes the session from the channel's presence; announces a `leave` for a user's last session. */
  presenceLeave(session: Session, channel: string): Promise<void>;
  /** Called once when a session is gone, with the channels it was in. */
  sessionGone(session: Session, channels: string[]): Promise<void>;
}
