import type { NodeInfo, Registry, RegistryListener } from './registry.js';

/** Registry in process memory; nodes in one process may share one instance. */
export class MemoryRegistry implements Registry {
  private readonly live = new Map<string, NodeInfo>();
  private readonly listeners = new Set<RegistryListener>();
  private readonly own = new Set<string>();
  private closed = false;

  get ready(): boolean {
    return !this.closed;
  }

  async register(info: NodeInfo): Promise<void> {
    this.own.add(info.node);
    this.live.set(info.node, { ...info });
    this.emit();
  }

  async update(info: NodeInfo): Promise<void> {
    if (this.live.has(info.node)) this.live.set(info.node, { ...info });
  }

  async nodes(): Promise<NodeInfo[]> {
    return [...this.live.values()].sort((a, b) => a.node.localeCompare(b.node)).map((n) => ({ ...n }));
  }

  onChange(listener: RegistryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const node of this.own) this.live.delete(node);
    this.own.clear();
    this.emit();
  }

  private emit(): void {
    const nodes = [...this.live.values()];
    for (const listener of this.listeners) listener(nodes);
  }
}
