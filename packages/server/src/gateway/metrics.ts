import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The gateway's Prometheus metrics (`GET /metrics` of the gateway; each node keeps its own). */
export class GatewayMetrics {
  readonly registry = new Registry();
  /** WebSocket upgrades by result: `proxied`, `unauthorized`, `no_node`, `connect_failed`, `rejected`. */
  readonly upgrades: Counter<'result'>;
  /** Connections proxied to each node and still open. */
  readonly connections: Gauge<'target'>;
  /** 1 while a node is healthy (gets new connections), 0 while it is listed but failing. */
  readonly nodeUp: Gauge<'target'>;
  /** HTTP requests forwarded to a node, by status class (`2xx` … or `error`). */
  readonly httpForwarded: Counter<'status'>;
  /** `/v1` requests answered 429 by the gateway, by reason: `rate_limited`, `auth_failures`. */
  readonly httpRejected: Counter<'reason'>;

  constructor(gatewayId: string, collectDefaults = true) {
    this.registry.setDefaultLabels({ gateway: gatewayId });
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_gateway_process_' });
    const registers = [this.registry];
    this.upgrades = new Counter({
      name: 'switchboard_gateway_upgrades_total',
      help: 'WebSocket upgrades by result',
      labelNames: ['result'],
      registers,
    });
    this.connections = new Gauge({
      name: 'switchboard_gateway_connections',
      help: 'Open proxied connections per node',
      labelNames: ['target'],
      registers,
    });
    this.nodeUp = new Gauge({
      name: 'switchboard_gateway_node_up',
      help: '1 while the node gets new connections',
      labelNames: ['target'],
      registers,
      // Over gateway workers: 1 only while every worker sends it connections.
      aggregator: 'min',
    });
    this.httpForwarded = new Counter({
      name: 'switchboard_gateway_http_forwarded_total',
      help: 'HTTP requests forwarded to a node by status class',
      labelNames: ['status'],
      registers,
    });
    this.httpRejected = new Counter({
      name: 'switchboard_gateway_http_rejected_total',
      help: '`/v1` requests answered 429 per client address, by reason: rate_limited, auth_failures',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['rate_limited', 'auth_failures']) this.httpRejected.inc({ reason }, 0);
  }
}
