import type { Logger } from 'pino';
import type { HashRing } from '../registry/hash-ring.js';
import { NodeRing } from '../registry/node-ring.js';
import type { NodeInfo, Registry } from '../registry/registry.js';

/** What the gateway knows of one node of the registry. */
export interface NodeState {
  readonly id: string;
  /** The registry's info (URL, start time); `connections` there is refreshed only every few seconds. */
  info: NodeInfo;
  /** The last `/readyz` probe answered 200 with this node's id. False until the first probe answers. */
  healthy: boolean;
  /** Why the node is not healthy (for logs and `/readyz` of the gateway). */
  reason: string;
  /** Sessions the node reported in its last `/readyz` (the registry's figure if it did not say). */
  reported: number;
  /** Upgrades this gateway sent to the node since the probe that `reported` comes from started. */
  sentSinceReport: number;
  /** Upgrades this gateway ever sent to the node. */
  sent: number;
  /** Connections proxied to the node by this gateway and still open. */
  open: number;
}

/** Options of {@link NodeHealth}. */
export interface NodeHealthOptions {
  /** The cluster's registry; the gateway only reads it (through change events). */
  registry: Registry;
  /** How often each node's `/readyz` is probed. */
  probeIntervalMs: number;
  /** A probe slower than this fails. Default: the interval, within 1–2 s. */
  probeTimeoutMs?: number;
  log: Logger;
}

/** Called when a node turns healthy or unhealthy, appears or goes. */
export type HealthListener = (live: readonly NodeState[]) => void;

/**
 * The live nodes as the gateway sees them: the registry's list (nodes with a valid lease, learnt
 * from `onChange`, never read per connection) narrowed to those whose `/readyz` answers 200.
 * A node that appears is probed at once and gets connections only after its first good answer;
 * one failed probe (or one failed connect, see {@link markDown}) takes it out until a probe
 * succeeds again.
 */
export class NodeHealth {
  private readonly states = new Map<string, NodeState>();
  private readonly nodeRing = new NodeRing();
  private readonly probing = new Map<string, AbortController>();
  private readonly listeners = new Set<HealthListener>();
  private readonly probeTimeoutMs: number;
  private liveCache: NodeState[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private firstList: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly options: NodeHealthOptions) {
    // At least a second even with fast probes: a busy node must not look dead for a slow answer.
    this.probeTimeoutMs = options.probeTimeoutMs ?? Math.min(Math.max(options.probeIntervalMs, 1000), 2000);
  }

  /**
   * Follows the registry and starts probing. Resolves once the first list has arrived and its
   * nodes have been probed once, or after `waitMs`, whichever comes first (the gateway starts
   * either way; `/readyz` tells when it has a node).
   */
  async start(waitMs = 3000): Promise<void> {
    const listed = new Promise<void>((resolve) => (this.firstList = resolve));
    this.unwatch = this.options.registry.onChange((nodes) => this.onNodes(nodes));
    this.timer = setInterval(() => this.probeAll(), this.options.probeIntervalMs);
    this.timer.unref();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      listed.then(() => Promise.all([...this.states.keys()].map((id) => this.probe(id)))),
      new Promise<void>((resolve) => (timeout = setTimeout(resolve, waitMs))),
    ]);
    clearTimeout(timeout);
  }

  /** Stops probing and following the registry. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.unwatch?.();
    for (const controller of this.probing.values()) controller.abort();
    this.probing.clear();
  }

  /** Healthy nodes with a live lease, sorted by id. */
  live(): readonly NodeState[] {
    this.liveCache ??= [...this.states.values()].filter((s) => s.healthy).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return this.liveCache;
  }

  /** Every node with a live lease, healthy or not, sorted by id. */
  all(): readonly NodeState[] {
    return [...this.states.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The cluster's ring: every node with a live lease, whatever its health, which is the ring the
   * nodes themselves build from the same registry list. So the gateway and the nodes agree on
   * every user's owner.
   */
  get ring(): HashRing {
    return this.nodeRing.ring;
  }

  /** A node's state, if the registry lists it. */
  get(id: string): NodeState | undefined {
    return this.states.get(id);
  }

  /** Listens to changes of the live set; returns an unsubscribe function. */
  onChange(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Takes a node out at once (a connect to it failed); the next good probe brings it back. */
  markDown(id: string, reason: string): void {
    const state = this.states.get(id);
    if (!state || !state.healthy) return;
    this.setHealth(state, false, reason);
  }

  /** Counts an upgrade sent to `id` (for least-conn, before the node's next report shows it). */
  sentTo(state: NodeState): void {
    state.sent++;
    state.sentSinceReport++;
  }

  private onNodes(nodes: NodeInfo[]): void {
    if (this.stopped) return;
    this.nodeRing.update(nodes);
    const seen = new Set<string>();
    let changed = false;
    for (const info of nodes) {
      seen.add(info.node);
      const state = this.states.get(info.node);
      if (!state) {
        this.states.set(info.node, {
          id: info.node,
          info,
          healthy: false,
          reason: 'not probed yet',
          reported: info.connections,
          sentSinceReport: 0,
          sent: 0,
          open: 0,
        });
        this.options.log.info({ target: info.node, url: info.url }, 'node joined the registry');
        void this.probe(info.node);
      } else if (state.info.url !== info.url || state.info.startedAt !== info.startedAt) {
        // Restarted (or moved): what we knew about it is stale until it answers again.
        state.info = info;
        if (state.healthy) {
          this.setHealth(state, false, 'restarted', false);
          changed = true;
        }
        void this.probe(info.node);
      }
    }
    for (const [id, state] of this.states) {
      if (seen.has(id)) continue;
      this.states.delete(id);
      this.probing.get(id)?.abort();
      this.options.log.info({ target: id }, 'node left the registry (lease gone)');
      if (state.healthy) changed = true;
    }
    if (changed) this.emit();
    const done = this.firstList;
    this.firstList = undefined;
    done?.();
  }

  private probeAll(): void {
    for (const id of this.states.keys()) void this.probe(id);
  }

  /** One `/readyz` probe; at most one in flight per node. */
  private async probe(id: string): Promise<void> {
    const state = this.states.get(id);
    if (!state || this.probing.has(id) || this.stopped) return;
    const controller = new AbortController();
    this.probing.set(id, controller);
    const timer = setTimeout(() => controller.abort(), this.probeTimeoutMs);
    const sentAtStart = state.sent;
    const url = state.info.url;
    let ok = false;
    let reason = '';
    let connections: number | undefined;
    try {
      const res = await fetch(`${url}/readyz`, { signal: controller.signal });
      const body = (await res.json().catch(() => ({}))) as { node?: unknown; status?: unknown; connections?: unknown };
      if (body.node !== id) reason = `${url}/readyz answered for node ${String(body.node)}`;
      else if (res.status !== 200) reason = `/readyz answered ${res.status} ${String(body.status)}`;
      else ok = true;
      if (typeof body.connections === 'number') connections = body.connections;
    } catch (err) {
      reason = controller.signal.aborted
        ? `/readyz did not answer within ${this.probeTimeoutMs} ms`
        : `/readyz failed: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
      this.probing.delete(id);
    }
    // The node may have gone or been replaced while the probe ran; then this answer is stale.
    if (this.stopped || this.states.get(id) !== state || state.info.url !== url) return;
    if (ok) {
      state.reported = connections ?? state.info.connections;
      state.sentSinceReport = state.sent - sentAtStart;
    }
    if (ok !== state.healthy) this.setHealth(state, ok, reason);
    else if (!ok) state.reason = reason;
  }

  private setHealth(state: NodeState, healthy: boolean, reason: string, emit = true): void {
    state.healthy = healthy;
    state.reason = healthy ? '' : reason;
    this.liveCache = undefined;
    if (healthy) this.options.log.info({ target: state.id }, 'node is ready: it gets new connections');
    else this.options.log.warn({ target: state.id, reason }, 'node is not ready: no new connections');
    if (emit) this.emit();
  }

  private emit(): void {
    this.liveCache = undefined;
    const live = this.live();
    for (const listener of this.listeners) {
      try {
        listener(live);
      } catch {
        // A listener's fault must not stop the others.
      }
    }
  }
}
