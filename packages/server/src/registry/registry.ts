/** A live node as the registry knows it. */
export interface NodeInfo {
  node: string;
  /** Public WebSocket/HTTP base URL of the node. */
  url: string;
  /** Open sessions on the node. */
  connections: number;
  /** When the node started, ms since the epoch. */
  startedAt: number;
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
