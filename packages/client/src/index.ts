export { Switchboard } from './client.js';
export type { ClientOptions } from './options.js';
export { Subscription, type SubscriptionEvents } from './subscription.js';
export { fullJitter, type Backoff, type FullJitterOptions } from './backoff.js';
export { MemoryPositionStore, WebStoragePositionStore, type PositionStore, type StorageLike } from './position-store.js';
export {
  SwitchboardError,
  type ClientErrorCode,
  type ClientEvents,
  type ClientState,
  type InboxState,
  type Message,
  type PublishResult,
  type Receipt,
  type SendOptions,
  type TopicMap,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';
export { reconnectAdvice, CloseCode, type PresenceUser, type StreamPosition } from '@switchboard/protocol';
