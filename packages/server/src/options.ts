import { z } from 'zod';

/** The history stores this build has (`SWITCHBOARD_HISTORY`). */
export type HistoryName = 'memory' | 'redis' | 'postgres';

/** The brokers this build has (`SWITCHBOARD_BROKER`). */
export type BrokerName = 'memory' | 'redis' | 'rabbitmq' | 'nats';

/**
 * Every option of a node: its env name, flag, default and documentation. docs/config.md is checked
 * against this table by a test, so the two cannot drift.
 */
export const OPTION_SPECS = {
  port: { env: 'PORT', doc: 'TCP port for WebSocket and HTTP.', schema: z.coerce.number().int().min(0).max(65535), default: 8080 },
  host: {
    env: 'HOST',
    doc: 'Address to listen on. Use 0.0.0.0 to accept remote clients.',
    schema: z.string().min(1),
    default: '127.0.0.1',
  },
  nodeId: {
    env: 'SWITCHBOARD_NODE_ID',
    doc: "This node's id in logs, presence and `welcome.node`. Default: `n-` and 6 random characters.",
    schema: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, `_`, `.`, `-`; at most 64'),
    default: undefined as string | undefined,
  },
  publicUrl: {
    env: 'SWITCHBOARD_PUBLIC_URL',
    doc: 'URL clients use to reach this node (shown in `/v1/nodes`). Default: `http://HOST:PORT`.',
    schema: z.url(),
    default: undefined as string | undefined,
  },
  wsPath: {
    env: 'SWITCHBOARD_WS_PATH',
    doc: 'Path of the WebSocket endpoint.',
    schema: z.string().regex(/^\/[^?#\s]*$/, 'a path starting with /'),
    default: '/ws',
  },
  jwtSecret: {
    env: 'SWITCHBOARD_JWT_SECRET',
    doc: 'HS256 secret for client tokens, at least 32 characters. Secret: never logged.',
    schema: z.string().min(32, 'at least 32 characters'),
    default: undefined as string | undefined,
    secret: true,
  },
  jwtPublicKey: {
    env: 'SWITCHBOARD_JWT_PUBLIC_KEY',
    doc: 'PEM public key (text, or a path to a file) for RS256/ES256 client tokens.',
    schema: z.string().min(1),
    default: undefined as string | undefined,
  },
  jwtAlgorithm: {
    env: 'SWITCHBOARD_JWT_ALGORITHM',
    doc: "Pinned token algorithm. Default: HS256 with a secret; RS256 or ES256 from the public key's type.",
    schema: z.enum(['HS256', 'RS256', 'ES256']),
    default: undefined as 'HS256' | 'RS256' | 'ES256' | undefined,
  },
  requireExp: {
    env: 'SWITCHBOARD_REQUIRE_EXP',
    doc: 'Reject tokens without `exp`.',
    schema: z.stringbool().or(z.boolean()),
    default: true,
  },
  apiKey: {
    env: 'SWITCHBOARD_API_KEY',
    doc: 'Bearer key for the `/v1` HTTP API. Without one, `/v1` answers 401. Secret: never logged.',
    schema: z.string().min(16, 'at least 16 characters'),
    default: undefined as string | undefined,
    secret: true,
  },
  engine: {
    env: 'SWITCHBOARD_ENGINE',
    doc: 'Presence, history and registry backend: `memory` (one node, nothing to install) or `redis` (a cluster of nodes).',
    schema: z.enum(['memory', 'redis']),
    default: 'memory' as 'memory' | 'redis',
  },
  broker: {
    env: 'SWITCHBOARD_BROKER',
    doc: 'Broker between nodes: `memory` (one process), `redis` (pub/sub), `rabbitmq` (publisher confirms and consumer acks) or `nats` (core NATS). Default: the same as `engine`. Every broker but `memory` needs engine `redis`, whose history the nodes share.',
    schema: z.enum(['memory', 'redis', 'rabbitmq', 'nats']),
    default: undefined as BrokerName | undefined,
  },
  routing: {
    env: 'SWITCHBOARD_ROUTING',
    doc: "`interest`: a node receives only channels it has subscribers for; `broadcast`: every node receives every publication and filters; `hash`: a user's messages go straight to the node that owns the user on the hash ring (use with the gateway's `hash` policy).",
    schema: z.enum(['interest', 'broadcast', 'hash']),
    default: 'interest' as 'interest' | 'broadcast' | 'hash',
  },
  moveWindowMs: {
    env: 'SWITCHBOARD_MOVE_WINDOW_MS',
    doc: 'With `hash` routing, when the ring changes, the sessions whose user now belongs to another node are closed with 4000 (moved) spread over this window, so the new node is not stampeded.',
    schema: z.coerce.number().int().min(0),
    default: 5_000,
  },
  channelLingerMs: {
    env: 'SWITCHBOARD_CHANNEL_LINGER_MS',
    doc: "How long a node keeps receiving a channel after its last local session left it: a session that comes back within it (a reconnect, a page reload; the gateway's `hash` policy brings it to the same node) costs the broker no unsubscribe and subscribe. 0: dropped at once.",
    schema: z.coerce.number().int().min(0).max(600_000),
    default: 5_000,
  },
  redisUrl: {
    env: 'REDIS_URL',
    doc: 'Redis for engine/broker `redis`. Secret parts (password) are never logged.',
    schema: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL'),
    default: 'redis://127.0.0.1:6379',
  },
  redisCluster: {
    env: 'SWITCHBOARD_REDIS_CLUSTER',
    doc: "`on`: `REDIS_URL` names one node of a Redis Cluster (the others are found from it). A channel's keys share one hash slot, and the Redis broker uses sharded pub/sub (`SSUBSCRIBE`, `SPUBLISH`), so a publication crosses one shard only. Needs Redis 7.",
    schema: z.enum(['on', 'off']),
    default: 'off' as 'on' | 'off',
  },
  amqpUrl: {
    env: 'AMQP_URL',
    doc: 'RabbitMQ for broker `rabbitmq` (`amqp://` or `amqps://`, with the vhost as its path). The password is never logged.',
    schema: z.string().regex(/^amqps?:\/\//, 'an amqp:// or amqps:// URL'),
    default: 'amqp://guest:guest@127.0.0.1:5672',
  },
  natsUrl: {
    env: 'NATS_URL',
    doc: 'NATS for broker `nats` (`nats://host:port`, a comma-separated list for a NATS cluster). Credentials in it are never logged.',
    schema: z.string().regex(/^(nats|tls):\/\//, 'a nats:// or tls:// URL'),
    default: 'nats://127.0.0.1:4222',
  },
  redisPrefix: {
    env: 'SWITCHBOARD_REDIS_PREFIX',
    doc: 'Prefix of every Redis key and pub/sub channel, so several clusters can share one Redis.',
    schema: z.string().regex(/^[A-Za-z0-9_.:-]{1,32}$/, 'letters, digits, `_.:-`; at most 32'),
    default: 'sb:',
  },
  presenceTtlMs: {
    env: 'SWITCHBOARD_PRESENCE_TTL_MS',
    doc: "Presence lease: a node renews its sessions' entries every third of it; the users of a node that died get `leave` within it. Also the node lease of the registry.",
    schema: z.coerce.number().int().min(1000),
    default: 15_000,
  },
  allowedOrigins: {
    env: 'SWITCHBOARD_ALLOWED_ORIGINS',
    doc: 'Comma-separated origins allowed to open a socket, compared as RFC 6454 says: scheme and host without regard to case, the default port (443, 80) the same as none; nothing else is loosened (no subdomains, paths or trailing dots). Empty: any origin.',
    schema: z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'origins look like https://example.com (no path)')),
    default: [] as string[],
  },
  maxPayloadBytes: {
    env: 'SWITCHBOARD_MAX_PAYLOAD_BYTES',
    doc: 'Largest client frame; a bigger one closes the session with 1009. Also the largest HTTP body.',
    schema: z.coerce.number().int().min(1024),
    default: 65_536,
  },
  rateLimitPerSecond: {
    env: 'SWITCHBOARD_RATE_LIMIT_PER_SECOND',
    doc: 'Frames per second a session may send (token bucket refill).',
    schema: z.coerce.number().positive(),
    default: 100,
  },
  rateLimitBurst: {
    env: 'SWITCHBOARD_RATE_LIMIT_BURST',
    doc: 'Bucket size: frames a session may send at once.',
    schema: z.coerce.number().int().min(1),
    default: 200,
  },
  rateLimitMaxRejected: {
    env: 'SWITCHBOARD_RATE_LIMIT_MAX_REJECTED',
    doc: 'Rejected frames (net of 10% of the rate forgiven per second) before the session is closed with 4029.',
    schema: z.coerce.number().int().min(1),
    default: 50,
  },
  httpRateLimitPerSecond: {
    env: 'SWITCHBOARD_HTTP_RATE_LIMIT_PER_SECOND',
    doc: "`/v1` requests per second one client address may make (token bucket refill); over it, HTTP 429 `rate_limited` with `Retry-After`. Behind the gateway or a balancer the address is the proxy's. `/healthz`, `/readyz` and `/metrics` are never limited. 0 turns the limit off.",
    schema: z.coerce.number().min(0),
    default: 2000,
  },
  httpRateLimitBurst: {
    env: 'SWITCHBOARD_HTTP_RATE_LIMIT_BURST',
    doc: 'Bucket size: `/v1` requests one client address may make at once. 0 turns the limit off.',
    schema: z.coerce.number().int().min(0),
    default: 4000,
  },
  httpAuthFailuresPerSecond: {
    env: 'SWITCHBOARD_HTTP_AUTH_FAILURES_PER_SECOND',
    doc: 'Failed authentications (a `/v1` answer 401: missing or wrong API key, or a bad client token on `/v1/route`) one client address is allowed per second once its `httpAuthFailuresBurst` is spent; while it has none left, every `/v1` request from it gets 429, even with the right key. Always on, so the API key cannot be guessed quickly.',
    schema: z.coerce.number().positive(),
    default: 1,
  },
  httpAuthFailuresBurst: {
    env: 'SWITCHBOARD_HTTP_AUTH_FAILURES_BURST',
    doc: 'Failed authentications one client address may make at once before it is answered 429.',
    schema: z.coerce.number().int().min(1),
    default: 30,
  },
  maxSubscriptions: {
    env: 'SWITCHBOARD_MAX_SUBSCRIPTIONS',
    doc: 'Channels one session may be subscribed to, including its automatic ones.',
    schema: z.coerce.number().int().min(3),
    default: 100,
  },
  maxConnectionsPerUser: {
    env: 'SWITCHBOARD_MAX_CONNECTIONS_PER_USER',
    doc: 'Sessions one user may hold on this node; one more is closed with 1008.',
    schema: z.coerce.number().int().min(1),
    default: 20,
  },
  maxConnections: {
    env: 'SWITCHBOARD_MAX_CONNECTIONS',
    doc: 'Sessions on this node; past it, upgrades get HTTP 503.',
    schema: z.coerce.number().int().min(1),
    default: 50_000,
  },
  maxOutboundBytes: {
    env: 'SWITCHBOARD_MAX_OUTBOUND_BYTES',
    doc: 'Unsent bytes held per session; past it the session is closed with 4008.',
    schema: z.coerce.number().int().min(1024),
    default: 1_048_576,
  },
  heartbeatIntervalMs: {
    env: 'SWITCHBOARD_HEARTBEAT_INTERVAL_MS',
    doc: 'Server ping interval; a peer silent for two intervals is dropped. Sent to clients in `welcome.heartbeat` (seconds).',
    schema: z.coerce.number().int().min(100),
    default: 25_000,
  },
  handshakeTimeoutMs: {
    env: 'SWITCHBOARD_HANDSHAKE_TIMEOUT_MS',
    doc: 'Time a connection has to complete its HTTP upgrade request.',
    schema: z.coerce.number().int().min(100),
    default: 10_000,
  },
  drainTimeoutMs: {
    env: 'SWITCHBOARD_DRAIN_TIMEOUT_MS',
    doc: 'On SIGTERM, the most time spent closing sessions before the process exits.',
    schema: z.coerce.number().int().min(0),
    default: 10_000,
  },
  drainSpreadMs: {
    env: 'SWITCHBOARD_DRAIN_SPREAD_MS',
    doc: 'On SIGTERM, the window over which sessions are closed with 1001, evenly, so that their clients do not all reconnect to the other nodes at once (at most `drainTimeoutMs` less 1 s; 0 closes every session at once).',
    schema: z.coerce.number().int().min(0),
    default: 2000,
  },
  perMessageDeflate: {
    env: 'SWITCHBOARD_PER_MESSAGE_DEFLATE',
    doc: 'Negotiate permessage-deflate compression (CPU and memory per socket).',
    schema: z.stringbool().or(z.boolean()),
    default: false,
  },
  historySize: {
    env: 'SWITCHBOARD_HISTORY_SIZE',
    doc: 'Publications kept per channel for recovery, at most (`historyTtlMs` bounds them by age). The default keeps 10 s of a channel at 1,000 msg/s, so clients that reconnect under load recover; the memory it costs is in the section below the table.',
    schema: z.coerce.number().int().min(0),
    default: 10_000,
  },
  historyTtlMs: {
    env: 'SWITCHBOARD_HISTORY_TTL_MS',
    doc: 'Age after which a kept publication is dropped.',
    schema: z.coerce.number().int().min(1000),
    default: 300_000,
  },
  historyMetaTtlMs: {
    env: 'SWITCHBOARD_HISTORY_META_TTL_MS',
    doc: 'A channel idle this long forgets its epoch and offset (resuming it then gives `recovered:false`).',
    schema: z.coerce.number().int().min(1000),
    default: 86_400_000,
  },
  idempotencyWindowMs: {
    env: 'SWITCHBOARD_IDEMPOTENCY_WINDOW_MS',
    doc: 'How long the `key` of a send or publish is remembered: a repeat within it is not delivered again and is answered with the original offset.',
    schema: z.coerce.number().int().min(1000),
    default: 300_000,
  },
  history: {
    env: 'SWITCHBOARD_HISTORY',
    doc: "History (and inbox) store: `memory`, `redis` (needs engine `redis`) or `postgres` (durable; needs `DATABASE_URL`). Default: the engine's store.",
    schema: z.enum(['memory', 'redis', 'postgres']),
    default: undefined as HistoryName | undefined,
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    doc: 'PostgreSQL for history `postgres` (`postgres://user:password@host:5432/database`). The schema is applied at start-up (or by `switchboard migrate`). The password is never logged.',
    schema: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL'),
    default: undefined as string | undefined,
    secret: true,
  },
  inbox: {
    env: 'SWITCHBOARD_INBOX',
    doc: "`on`: each `user:` channel is its user's inbox, kept for `inboxRetentionMs` and `inboxSize`, with acks, receipts and catch-up on a new device (durable with history `postgres`, or Redis with persistence; not with `memory`).",
    schema: z.enum(['on', 'off']),
    default: 'off' as 'on' | 'off',
  },
  inboxRetentionMs: {
    env: 'SWITCHBOARD_INBOX_RETENTION_MS',
    doc: 'Inbox on: how long a `user:` channel keeps a message.',
    schema: z.coerce.number().int().min(1000),
    default: 604_800_000,
  },
  inboxSize: {
    env: 'SWITCHBOARD_INBOX_SIZE',
    doc: 'Inbox on: messages a `user:` channel keeps at most.',
    schema: z.coerce.number().int().min(1),
    default: 10_000,
  },
  webhookUrl: {
    env: 'SWITCHBOARD_WEBHOOK_URL',
    doc: 'Where `user.online`, `user.offline` and (inbox on) `message.unacked` events are POSTed, signed with `webhookSecret`, retried with backoff, each by one node of the cluster.',
    schema: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
    default: undefined as string | undefined,
  },
  webhookSecret: {
    env: 'SWITCHBOARD_WEBHOOK_SECRET',
    doc: 'HMAC-SHA256 key of the `Switchboard-Signature` header, at least 16 characters. Secret: never logged.',
    schema: z.string().min(16, 'at least 16 characters'),
    default: undefined as string | undefined,
    secret: true,
  },
  unackedAfterMs: {
    env: 'SWITCHBOARD_UNACKED_AFTER_MS',
    doc: 'Inbox and webhooks on: a message unacked this long after it was sent is announced with `message.unacked` (the hook for a mobile push).',
    schema: z.coerce.number().int().min(100),
    default: 30_000,
  },
  webhookTimeoutMs: {
    env: 'SWITCHBOARD_WEBHOOK_TIMEOUT_MS',
    doc: 'A webhook POST without an answer for this long failed (and is retried).',
    schema: z.coerce.number().int().min(100),
    default: 5_000,
  },
  webhookQueueSize: {
    env: 'SWITCHBOARD_WEBHOOK_QUEUE_SIZE',
    doc: 'Webhook events waiting at most, cluster-wide; past it new events are dropped (logged, counted in `switchboard_webhook_events_total`).',
    schema: z.coerce.number().int().min(1),
    default: 10_000,
  },
  maxRecoveryMessages: {
    env: 'SWITCHBOARD_MAX_RECOVERY_MESSAGES',
    doc: 'Most publications replayed per channel on recovery (read 500 at a time, each page once the socket has sent the last); a bigger gap gives `recovered:false`.',
    schema: z.coerce.number().int().min(1),
    default: 10_000,
  },
  gatewayPolicy: {
    env: 'SWITCHBOARD_GATEWAY_POLICY',
    doc: "Gateway only (`switchboard gateway`): where a new connection goes. `hash`: the user's owner on the hash ring (what `/v1/route` answers); `round-robin`: the next node in turn; `least-conn`: the node with the fewest sessions.",
    schema: z.enum(['hash', 'round-robin', 'least-conn']),
    default: 'hash' as 'hash' | 'round-robin' | 'least-conn',
  },
  gatewayProbeIntervalMs: {
    env: 'SWITCHBOARD_GATEWAY_PROBE_INTERVAL_MS',
    doc: "Gateway only: how often the gateway probes each node's `/readyz`. A node that fails a probe (or refuses a connection) gets no new connections until it passes one.",
    schema: z.coerce.number().int().min(50),
    default: 2000,
  },
  acceptPerTurn: {
    env: 'SWITCHBOARD_ACCEPT_PER_TURN',
    doc: "Connections a node or gateway process accepts per event-loop turn at most. Node 20 accepts one per turn per listening handle (libuv 1.45), so a process whose turns grow long under load takes reconnections slowly and its accept queue fills; above 1, the listening socket gets that many handles (descriptors duplicated by a helper process for a moment at start). 1: Node's own behaviour.",
    schema: z.coerce.number().int().min(1).max(64),
    default: 8,
  },
  gatewayWorkers: {
    env: 'SWITCHBOARD_GATEWAY_WORKERS',
    doc: "Gateway only: processes that accept and proxy connections on the gateway's one port (Node's cluster; each worker accepts from the shared socket). Raise it when the gateway's core is the limit or its accept queue fills under a reconnect storm. Per-address HTTP limits and `least-conn` counts are each worker's own; `/metrics` sums the workers.",
    schema: z.coerce.number().int().min(1).max(64),
    default: 1,
  },
  tlsCert: {
    env: 'SWITCHBOARD_TLS_CERT',
    doc: 'Gateway only: PEM certificate chain (text, or a path to a file) to serve `wss://` and `https://`. Needs `tlsKey`. Nodes speak plain HTTP behind the gateway or a balancer.',
    schema: z.string().min(1),
    default: undefined as string | undefined,
  },
  tlsKey: {
    env: 'SWITCHBOARD_TLS_KEY',
    doc: 'Gateway only: PEM private key (text, or a path to a file) of `tlsCert`. Secret: never logged.',
    schema: z.string().min(1),
    default: undefined as string | undefined,
    secret: true,
  },
  logLevel: {
    env: 'SWITCHBOARD_LOG_LEVEL',
    doc: 'pino log level.',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    default: 'info' as const,
  },
} as const;

type Specs = typeof OPTION_SPECS;

/** Resolved, validated, frozen node options. */
export type NodeOptions = {
  readonly [K in keyof Specs]: Specs[K]['default'] extends undefined
    ? Specs[K]['default'] | z.output<Specs[K]['schema']>
    : z.output<Specs[K]['schema']>;
} & {
  readonly nodeId: string;
  readonly broker: BrokerName;
  readonly history: HistoryName;
};

/** Options as a caller may pass them: any subset. */
export type NodeOptionsInput = { -readonly [K in keyof Specs]?: unknown };

const REDIS_CLUSTER_NEEDS_REDIS =
  'option redisCluster (SWITCHBOARD_REDIS_CLUSTER) is on but engine (SWITCHBOARD_ENGINE) is memory: set SWITCHBOARD_ENGINE=redis';
const REDIS_CLUSTER_NO_HASH =
  "option routing (SWITCHBOARD_ROUTING) is hash but the Redis broker is on a Redis Cluster (SWITCHBOARD_REDIS_CLUSTER=on), where a publication's two names (the owner node's and the channel's) live on two shards with no order between them: use interest or broadcast routing (the gateway can still use its hash policy), or another broker";

/** Thrown when an option is invalid; the message names the option, its flag and env name. */
export class OptionsError extends Error {
  readonly code = 'ERR_OPTIONS';

  constructor(message: string) {
    super(message);
    this.name = 'OptionsError';
  }
}

/** The command-line flag of an option (`heartbeatIntervalMs` → `--heartbeat-interval-ms`). */
export function flagOf(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/**
 * Spreads `input` over the documented defaults, validates each option and freezes the result.
 * @throws OptionsError naming the option to fix.
 */
export function resolveOptions(input: NodeOptionsInput = {}): NodeOptions {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(OPTION_SPECS) as [keyof Specs, Specs[keyof Specs]][]) {
    let value = input[key];
    if (value === undefined || value === '') {
      out[key] = spec.default;
      continue;
    }
    if (key === 'allowedOrigins' && typeof value === 'string') {
      value = value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    }
    const result = spec.schema.safeParse(value);
    if (!result.success) {
      const detail = result.error.issues.map((i) => i.message).join('; ');
      throw new OptionsError(`invalid option ${key} (flag ${flagOf(key)}, env ${spec.env}): ${detail}`);
    }
    out[key] = result.data;
  }
  if (out.jwtSecret !== undefined && out.jwtPublicKey !== undefined) {
    throw new OptionsError(
      'options jwtSecret (SWITCHBOARD_JWT_SECRET) and jwtPublicKey (SWITCHBOARD_JWT_PUBLIC_KEY) exclude each other: set one',
    );
  }
  if (out.jwtAlgorithm === 'HS256' && out.jwtPublicKey !== undefined) {
    throw new OptionsError('option jwtAlgorithm (SWITCHBOARD_JWT_ALGORITHM) is HS256 but a public key was given: use RS256 or ES256');
  }
  if (out.jwtAlgorithm !== undefined && out.jwtAlgorithm !== 'HS256' && out.jwtSecret !== undefined) {
    throw new OptionsError(
      `option jwtAlgorithm (SWITCHBOARD_JWT_ALGORITHM) is ${String(out.jwtAlgorithm)} but a secret was given: use HS256 or set SWITCHBOARD_JWT_PUBLIC_KEY`,
    );
  }
  if ((out.rateLimitBurst as number) < (out.rateLimitPerSecond as number) / 10) {
    throw new OptionsError('option rateLimitBurst (SWITCHBOARD_RATE_LIMIT_BURST) must be at least a tenth of rateLimitPerSecond');
  }
  if ((out.tlsCert === undefined) !== (out.tlsKey === undefined)) {
    throw new OptionsError('options tlsCert (SWITCHBOARD_TLS_CERT) and tlsKey (SWITCHBOARD_TLS_KEY) go together: give both or neither');
  }
  out.broker ??= out.engine;
  if (out.broker !== 'memory' && out.engine !== 'redis') {
    throw new OptionsError(
      `option broker (SWITCHBOARD_BROKER) is ${String(out.broker)} but engine (SWITCHBOARD_ENGINE) is memory: nodes would each number their own offsets; set SWITCHBOARD_ENGINE=redis`,
    );
  }
  out.history ??= out.engine;
  if (out.history === 'redis' && out.engine !== 'redis') {
    throw new OptionsError(
      'option history (SWITCHBOARD_HISTORY) is redis but engine (SWITCHBOARD_ENGINE) is memory: set SWITCHBOARD_ENGINE=redis',
    );
  }
  if (out.history === 'memory' && out.broker !== 'memory') {
    throw new OptionsError(
      `option history (SWITCHBOARD_HISTORY) is memory but broker (SWITCHBOARD_BROKER) is ${String(out.broker)}: nodes would each number their own offsets; use history redis or postgres`,
    );
  }
  if (out.history === 'postgres' && out.databaseUrl === undefined) {
    throw new OptionsError(
      'option history (SWITCHBOARD_HISTORY) is postgres but no DATABASE_URL is set: give postgres://user@host:5432/database',
    );
  }
  if (out.redisCluster === 'on' && out.engine !== 'redis') throw new OptionsError(REDIS_CLUSTER_NEEDS_REDIS);
  if (out.redisCluster === 'on' && out.broker === 'redis' && out.routing === 'hash') throw new OptionsError(REDIS_CLUSTER_NO_HASH);
  if ((out.webhookUrl === undefined) !== (out.webhookSecret === undefined)) {
    throw new OptionsError(
      'options webhookUrl (SWITCHBOARD_WEBHOOK_URL) and webhookSecret (SWITCHBOARD_WEBHOOK_SECRET) go together: every webhook is signed',
    );
  }
  out.nodeId ??= `n-${Math.random().toString(36).slice(2, 8)}`;
  return Object.freeze(out) as NodeOptions;
}

/** Option names whose values are secrets and must never be printed (the logger redacts them by name). */
export const SECRET_OPTIONS: ReadonlySet<string> = new Set(
  Object.entries(OPTION_SPECS)
    .filter(([, spec]) => 'secret' in spec && spec.secret)
    .map(([key]) => key),
);
