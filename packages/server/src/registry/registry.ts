/** A live node as the registry knows it. */
export interface NodeInfo {
  node: string;
  /** Public WebSocket/HTTP base URL of the node. */
  url: string;
  /** Open sessions on the node. */
  connections: number;
  /** When the node started, ms since the epoch. */
  startedAt: number;
  /** Load figures for the admin dashboard and `GET /v1/nodes`, refreshed every second. */
  stats?: NodeStats;
}

/** A node's load figures at one moment; the counters are since the node started. */
export interface NodeStats {
  /** Distinct users with a session on the node. */
  users: number;
  /** Channels with a subscriber on the node. */
  channels: number;
  /** Publications the node accepted. */
  published: number;
  /** Message frames the node wrote to sockets. */
  delivered: number;
  /** When the figures were taken, ms since the epoch. */
  ts: number;
}

/** Called when the set of live nodes changes. */
export type RegistryListener = (nodes: NodeInfo[]) => void;

/** Live nodes of the cluster, kept by leases that each node renews. */
export interface Registry {
  /** Announces this node; renews its lease until `close`. */
  register(info: NodeInfo): Promise<void>;
  /** Updates this node's load figures. */
  update(info: NodeInfo): Promise<void>;
  /** The live nodes, sorted by id. */
  nodes(): Promise<NodeInfo[]>;
  /** Subscribes to changes of the live set; returns an unsubscribe function. */
  onChange(listener: RegistryListener): () => void;
  /** True while the registry is reachable. */
  readonly ready: boolean;
  /** Removes this node and releases resources. Idempotent. */
  close(): Promise<void>;
}
