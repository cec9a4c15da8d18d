/**
 * An in-process cluster: several real SwitchboardNodes (real HTTP and WebSocket servers on
 * loopback ports) on the memory engine, sharing one bus, one list of live nodes, one history and
 * one presence store — socket.io-adapter's EventEmitter cluster, here. Cluster semantics in every
 * test run, in well under a second, with no service to start.
 */
import { MemoryBus } from '../../src/broker/memory-transport.js';
import { createEngine } from '../../src/engine.js';
import { MemoryHistory } from '../../src/history/memory-history.js';
import { SwitchboardNode, resolveOptions, type NodeOptionsInput } from '../../src/index.js';
import { MemoryPresenceStore } from '../../src/presence/memory-presence-store.js';
import { MemoryRoster } from '../../src/registry/memory-registry.js';
import { API_KEY, SECRET, type TestNode } from '../helpers.js';
import { logSink } from '../support/log-sink.js';

/** Nodes in one process that behave as a cluster. */
export class InProcessCluster {
  readonly shared = {
    bus: new MemoryBus(),
    roster: new MemoryRoster(),
    history: new MemoryHistory({ historySize: 200, historyTtlMs: 300_000, historyMetaTtlMs: 86_400_000, idempotencyWindowMs: 300_000 }),
    presence: new MemoryPresenceStore(),
  };
  readonly nodes: TestNode[] = [];

  /** `options` apply to every node (routing, say). */
  constructor(private readonly options: NodeOptionsInput = {}) {}

  /** Starts node `id` on an ephemeral port. */
  async start(id: string, options: NodeOptionsInput = {}): Promise<TestNode> {
    const { lines: logs, stream: sink } = logSink();
    const resolved = resolveOptions({
      port: 0,
      jwtSecret: SECRET,
      apiKey: API_KEY,
      logLevel: 'info',
      nodeId: id,
      ...this.options,
      ...options,
    });
    const node = new SwitchboardNode(resolved, { logDestination: sink, engine: createEngine(resolved, { shared: this.shared }) });
    const { url } = await node.start();
    const testNode: TestNode = {
      node,
      url,
      wsUrl: `${url.replace(/^http/, 'ws')}${resolved.wsPath}`,
      logs,
      stop: async () => {
        this.nodes.splice(this.nodes.indexOf(testNode), 1);
        await node.stop();
      },
    };
    this.nodes.push(testNode);
    return testNode;
  }

  /** Stops every node, then the shared stores. */
  async stop(): Promise<void> {
    await Promise.all([...this.nodes].map((n) => n.stop()));
    await Promise.all([this.shared.history.close(), this.shared.presence.close()]);
  }
}
