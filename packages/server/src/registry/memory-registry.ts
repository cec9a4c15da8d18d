import type { NodeInfo, Registry, RegistryListener } from './registry.js';

/** Code-unit order, the same in every process (as the Redis registry sorts). */
const byId = (a: NodeInfo, b: NodeInfo): number => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);

/**
 * The live nodes of one process's cluster, shared by the {@link MemoryRegistry} of each node (as
 * a `MemoryBus` is by their transports), so that nodes in one process see each other.
 */
export class MemoryRoster {
  private readonly live = new Map<string, NodeInfo>();
  private readonly listeners = new Set<RegistryListener>();

  /** @internal */
  set(info: NodeInfo, announce: boolean): void {
    this.live.set(info.node, { ...info });
    if (announce) this.emit();
  }

  /** @internal */
  has(node: string): boolean {
    return this.live.has(node);
  }

  /** @internal */
  delete(nodes: Iterable<string>): void {
    let changed = false;
    for (const node of nodes) changed = this.live.delete(node) || changed;
    if (changed) this.emit();
  }

  /** @internal */
  list(): NodeInfo[] {
    return [...this.live.values()].sort(byId).map((n) => ({ ...n }));
  }

  /** @internal */
  listen(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    const nodes = this.list();
    for (const listener of this.listeners) listener(nodes);
  }
}

/**
 * Registry in process memory. Nodes in one process share a {@link MemoryRoster}; each has a
 * registry of its own, whose `close` removes only what it registered. Like the Redis registry, a
 * new listener is called soon with the current list, then on every change.
 */
export class MemoryRegistry implements Registry {
  private readonly own = new Set<string>();
  private readonly unlisten = new Set<() => void>();
  private closed = false;

  constructor(private readonly roster: MemoryRoster = new MemoryRoster()) {}

  get ready(): boolean {
    return !this.closed;
  }

  async register(info: NodeInfo): Promise<void> {
    this.own.add(info.node);
    this.roster.set(info, true);
  }

  async update(info: NodeInfo): Promise<void> {
    if (this.roster.has(info.node)) this.roster.set(info, false);
  }

  async nodes(): Promise<NodeInfo[]> {
    return this.roster.list();
  }

  onChange(listener: RegistryListener): () => void {
    let active = true;
    const stop = this.roster.listen(listener);
    queueMicrotask(() => {
      if (active) listener(this.roster.list());
    });
    const unsubscribe = () => {
      active = false;
      stop();
      this.unlisten.delete(unsubscribe);
    };
    this.unlisten.add(unsubscribe);
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const unsubscribe of [...this.unlisten]) unsubscribe();
    this.roster.delete(this.own);
    this.own.clear();
  }
}
