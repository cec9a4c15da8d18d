import type { Logger } from 'pino';
import type { StreamPosition, SubscriptionState } from '@switchboard/protocol';
import type { Hub } from './hub.js';
import type { InboxService } from './inbox/inbox-service.js';
import type { NodeMetrics } from './metrics.js';
import type { NodeOptions } from './options.js';
import type { PresenceStore } from './presence/presence-store.js';
import type { Publication, PublicationInput } from './publication.js';

/** Where a publication landed; `duplicate` when its idempotency key had been seen. */
export interface PublishOutcome extends StreamPosition {
  duplicate: boolean;
}

/** Where a publication came from, for metrics. */
export type PublishSource = 'ws' | 'http';

/** What the node's services know of a session. */
export interface SessionRef {
  readonly id: string;
  readonly user: string;
  /** When it connected (ms since the epoch). */
  readonly since: number;
}

/** The options a session reads. */
export type SessionOptions = Pick<
  NodeOptions,
  | 'rateLimitPerSecond'
  | 'rateLimitBurst'
  | 'rateLimitMaxRejected'
  | 'maxRecoveryMessages'
  | 'maxOutboundBytes'
  | 'heartbeatIntervalMs'
  | 'maxSubscriptions'
>;

/** Publishing into channels and recovering from them: the node's channel service. */
export interface Channels {
  /**
   * Appends to history and hands to the broker. With an idempotency `key` (already scoped to the
   * sender), a repeat within the window is not published again and answers the original position.
   * @throws SwitchboardError `unavailable` or `bad_frame`.
   */
  publish(channel: string, input: PublicationInput, source: PublishSource, key?: string): Promise<PublishOutcome>;
  /**
   * Where delivery of `channel` starts for a subscriber, and the first page of what to replay;
   * `more` when further pages follow (read them with {@link page}).
   */
  recover(channel: string, since: StreamPosition | undefined): Promise<{ state: SubscriptionState; replay: Publication[]; more: boolean }>;
  /** The next page of a replay: publications after `since`, and whether more follow. */
  page(channel: string, since: StreamPosition): Promise<{ publications: Publication[]; more: boolean }>;
}

/** Presence changes of sessions, announced cluster-wide. */
export interface PresenceChanges {
  /** Records the session in the channel's presence; announces a `join` for a user's first session. */
  join(session: SessionRef, channel: string): Promise<void>;
  /** Removes the session from the channel's presence; announces a `leave` for a user's last session. */
  leave(session: SessionRef, channel: string): Promise<void>;
}

/** What sessions need of their node: its services, not the node itself. */
export interface NodeContext {
  readonly nodeId: string;
  readonly sessionOptions: SessionOptions;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly hub: Hub;
  /** Presence queries (`presence` frames). */
  readonly presenceStore: PresenceStore;
  readonly presence: PresenceChanges;
  readonly channels: Channels;
  /** The inbox, when it is on (`SWITCHBOARD_INBOX=on`). */
  readonly inbox: InboxService | undefined;
  /** Called once when a session is gone, with the channels it was in. */
  sessionGone(session: SessionRef, channels: string[]): Promise<void>;
}
