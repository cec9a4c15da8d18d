import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The node's Prometheus metrics, on a registry of its own (several nodes may share a process). */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly sessions: Gauge;
  readonly connectionsTotal: Counter<'result'>;
  readonly framesIn: Counter<'type'>;
  readonly messagesOut: Counter;
  /** Message frames written to sessions; bump this, not `messagesOut`, per message. */
  delivered = 0;
  /** Publications accepted, all sources (what {@link countPublication} counted). */
  published = 0;
  readonly publications: Counter<'source'>;
  readonly errors: Counter<'code'>;
  readonly closes: Counter<'code'>;
  readonly engineErrors: Counter<'component'>;
  readonly brokerUp: Gauge;
  readonly brokerReconnects: Counter;
  readonly localChannels: Gauge;
  readonly recoveries: Counter<'recovered'>;
  readonly publishLatency: Histogram;
  readonly deliveryLag: Histogram;
  readonly brokerConfirm: Histogram;
  readonly gaps: Counter;
  readonly inboxAcks: Counter<'result'>;
  readonly inboxReceipts: Counter;
  readonly inboxUnackedAtConnect: Histogram;
  readonly webhookEvents: Counter<'type' | 'outcome'>;
  readonly webhookLatency: Histogram;
  /** `/v1` requests answered 429, by reason (http-limits.ts). */
  readonly httpRejected: Counter<'reason'>;
  /**
   * Frames and publications are counted in plain numbers per label on the hot path (prom-client
   * hashes the labels on every `inc`) and handed to their counters when scraped.
   */
  private readonly frameCounts = new Map<string, { n: number }>();
  private readonly publicationCounts = new Map<string, { n: number }>();

  constructor(nodeId: string, collectDefaults = true) {
    this.registry.setDefaultLabels({ node: nodeId });
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'switchboard_process_' });
    const registers = [this.registry];
    this.sessions = new Gauge({ name: 'switchboard_sessions', help: 'Open sessions on this node', registers });
    this.connectionsTotal = new Counter({
      name: 'switchboard_connections_total',
      help: 'WebSocket upgrades by result',
      labelNames: ['result'],
      registers,
    });
    const frameCounts = this.frameCounts;
    this.framesIn = new Counter({
      name: 'switchboard_frames_in_total',
      help: 'Client frames received, once each, by frame type (`ping` for the bare text ping, `invalid`, `binary`)',
      labelNames: ['type'],
      registers,
      collect() {
        handOver(this, frameCounts);
      },
    });
    // Counted in a plain field on the hot path (once per message per session) and handed to
    // prom-client when scraped.
    let reported = 0;
    const delivered = () => this.delivered;
    this.messagesOut = new Counter({
      name: 'switchboard_messages_delivered_total',
      help: 'Message frames written to sessions',
      registers,
      collect() {
        const now = delivered();
        this.inc(now - reported);
        reported = now;
      },
    });
    const publicationCounts = this.publicationCounts;
    this.publications = new Counter({
      name: 'switchboard_publications_total',
      help: 'Publications accepted by source (ws or http)',
      labelNames: ['source'],
      registers,
      collect() {
        handOver(this, publicationCounts);
      },
    });
    this.errors = new Counter({
      name: 'switchboard_errors_total',
      help: 'Error frames and failed replies by code',
      labelNames: ['code'],
      registers,
    });
    this.closes = new Counter({
      name: 'switchboard_closes_total',
      help: 'Sessions closed by the server, by close code',
      labelNames: ['code'],
      registers,
    });
    this.engineErrors = new Counter({
      name: 'switchboard_engine_errors_total',
      help: 'Failures of the engine and of delivery, by component (history, broker, presence, registry, hub)',
      labelNames: ['component'],
      registers,
    });
    this.brokerUp = new Gauge({
      name: 'switchboard_broker_up',
      help: '1 while the link to the broker is up, 0 while it is down',
      registers,
    });
    this.brokerReconnects = new Counter({
      name: 'switchboard_broker_reconnects_total',
      help: 'Times the link to the broker came back after it was lost, with every subscription restored',
      registers,
    });
    this.localChannels = new Gauge({
      name: 'switchboard_local_channels',
      help: 'Channels this node receives: with a local subscriber, or one that left within the linger time',
      registers,
    });
    this.recoveries = new Counter({
      name: 'switchboard_recoveries_total',
      help: 'Channel recoveries by outcome',
      labelNames: ['recovered'],
      registers,
    });
    this.gaps = new Counter({
      name: 'switchboard_gaps_total',
      help: 'Live gaps in a channel (a publication the broker did not deliver) filled from history',
      registers,
    });
    this.inboxAcks = new Counter({
      name: 'switchboard_inbox_acks_total',
      help: 'Inbox acks by result: moved (the acked position went forward), unchanged (at or below it), rejected',
      labelNames: ['result'],
      registers,
    });
    this.inboxReceipts = new Counter({
      name: 'switchboard_inbox_receipts_total',
      help: "Read receipts put in senders' inboxes",
      registers,
    });
    this.inboxUnackedAtConnect = new Histogram({
      name: 'switchboard_inbox_unacked_at_connect',
      help: 'Unacked messages in the inbox of a session that connected without a position for it (handed to it before live ones)',
      buckets: [0, 1, 10, 100, 1000, 10_000],
      registers,
    });
    this.webhookEvents = new Counter({
      name: 'switchboard_webhook_events_total',
      help: 'Webhook events handled by this node, by type and outcome: delivered, failed (retried), gave_up, skipped (acked meanwhile), dropped (queue full or unreachable)',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.webhookLatency = new Histogram({
      name: 'switchboard_webhook_delivery_seconds',
      help: 'Time of one webhook POST, answered or not',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 1, 2.5, 5, 10],
      registers,
    });
    this.httpRejected = new Counter({
      name: 'switchboard_http_rejected_total',
      help: '`/v1` requests answered 429, by reason: rate_limited (over httpRateLimitPerSecond), auth_failures (the address failed authentication too often)',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of ['rate_limited', 'auth_failures']) this.httpRejected.inc({ reason }, 0);
    this.deliveryLag = new Histogram({
      name: 'switchboard_delivery_lag_seconds',
      help: "From a publication's ts to its write to this node's sockets (once per publication per delivering node: the cross-node lag)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.brokerConfirm = new Histogram({
      name: 'switchboard_broker_publish_seconds',
      help: 'Time for the broker to take a message (RabbitMQ publisher confirm, JetStream ack, Redis PUBLISH reply)',
      labelNames: ['broker'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
      registers,
    });
    this.publishLatency = new Histogram({
      name: 'switchboard_publish_seconds',
      help: 'Time to accept a publication (history append + broker publish)',
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
      registers,
    });
  }

  /** Counts one client frame of `type` (the frame type, or `ping`, `binary`, `invalid`). */
  countFrame(type: string): void {
    const count = this.frameCounts.get(type);
    if (count) count.n++;
    else this.frameCounts.set(type, { n: 1 });
  }

  /** Counts one accepted publication from `source`. */
  countPublication(source: string): void {
    this.published++;
    const count = this.publicationCounts.get(source);
    if (count) count.n++;
    else this.publicationCounts.set(source, { n: 1 });
  }
}

/** Adds what was counted per label since the last scrape to `counter`. */
function handOver(counter: Counter<string>, counts: Map<string, { n: number }>): void {
  for (const [label, count] of counts) {
    if (count.n > 0) counter.labels(label).inc(count.n);
    count.n = 0;
  }
}
