import { z } from 'zod';
import { ERROR_CODES, ID_PATTERN } from '@switchboard/protocol';

/**
 * The `/v1` API's bodies as zod schemas: the requests are validated with them, the handlers' answers
 * are typed by them, and `GET /v1/openapi.json` is generated from them (openapi.ts). One source, so
 * the document cannot drift from what the server checks and sends.
 */

/** The named request bodies, in the document's `components.schemas` as a request may send them. */
export const requestSchemas = z.registry<{ id: string }>();
/** The named answers, in `components.schemas` as the server sends them (no other fields). */
export const responseSchemas = z.registry<{ id: string }>();

const ID_SOURCE = ID_PATTERN.source.slice(1, -1);

export const UserId = z
  .string()
  .regex(ID_PATTERN, 'must be a user id: 1-128 printable ASCII characters, no spaces or colons')
  .meta({ description: 'A user id: 1-128 printable ASCII characters without spaces or colons.', examples: ['alice'] });

export const ChannelName = z
  .string()
  .regex(new RegExp(`^(?:broadcast|user:${ID_SOURCE}|group:${ID_SOURCE})$`), 'must be user:<id>, group:<id> or broadcast')
  .meta({ description: '`user:<id>`, `group:<id>` or `broadcast`.', examples: ['group:ops'] });

const Topic = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(/^[^$]/, 'topics starting with $ are reserved for the server')
  .meta({ description: 'What the message is about; the SDK emits it as an event name. Topics starting with `$` are the server’s.' });

const Offset = z.number().int().min(0).meta({ description: 'A position in the channel: publications are numbered 1, 2, … per epoch.' });
const Epoch = z.string().meta({ description: 'Opaque; changes when the channel’s history is lost.' });
const Millis = z.number().int().meta({ description: 'Milliseconds since the Unix epoch.' });

export const PublishRequest = z
  .object({
    channel: ChannelName,
    topic: Topic,
    data: z.unknown().optional().meta({ description: 'Any JSON value; `null` when absent.' }),
    from: UserId.nullable().optional().meta({ description: 'The sender the recipients see; `null` (the default) for the server.' }),
    key: z
      .string()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .optional()
      .meta({ description: 'Idempotency key: a repeat within the window is not published again and answers the first position.' }),
  })
  .register(requestSchemas, { id: 'PublishRequest' });

export const PublishResponse = z
  .object({
    channel: ChannelName,
    epoch: Epoch,
    offset: Offset,
    duplicate: z.literal(true).optional().meta({ description: 'The key was seen within the window: nothing was published.' }),
  })
  .register(responseSchemas, { id: 'PublishResponse' });

export const DisconnectRequest = z.object({ user: UserId }).register(requestSchemas, { id: 'DisconnectRequest' });

export const DisconnectResponse = z
  .object({ user: UserId, sessions: z.number().int().min(0).meta({ description: 'Sessions the user had when asked.' }) })
  .register(responseSchemas, { id: 'DisconnectResponse' });

const PresenceUser = z
  .object({ user: UserId, sessions: z.number().int().min(1), nodes: z.array(z.string()) })
  .register(responseSchemas, { id: 'PresenceUser' });

export const PresenceResponse = z
  .object({ channel: ChannelName, users: z.array(PresenceUser) })
  .register(responseSchemas, { id: 'PresenceResponse' });

const UserSession = z.object({ session: z.string(), node: z.string(), since: Millis }).register(responseSchemas, { id: 'UserSession' });

export const UserResponse = z
  .object({ user: UserId, online: z.boolean(), sessions: z.array(UserSession) })
  .register(responseSchemas, { id: 'UserResponse' });

export const UsersResponse = z
  .object({
    users: z.array(UserId).meta({ description: 'Users with a live session, in no particular order.' }),
    more: z.boolean().meta({ description: 'The list was cut at `limit`.' }),
  })
  .register(responseSchemas, { id: 'UsersResponse' });

const Message = z
  .object({
    type: z.literal('message'),
    channel: ChannelName,
    epoch: Epoch,
    offset: Offset,
    from: UserId.nullable(),
    topic: z.string(),
    data: z.unknown(),
    ts: Millis,
    receipt: z.literal(true).optional(),
  })
  .meta({ description: 'A publication, as the `message` frame carries it.' })
  .register(responseSchemas, { id: 'Message' });

export const HistoryResponse = z
  .object({
    channel: ChannelName,
    epoch: Epoch,
    offset: Offset.meta({ description: 'The channel’s latest offset.' }),
    messages: z.array(Message).meta({ description: 'Offsets after `since`, oldest first, at most `limit`.' }),
  })
  .register(responseSchemas, { id: 'HistoryResponse' });

export const InboxResponse = z
  .object({
    user: UserId,
    channel: ChannelName,
    epoch: Epoch,
    offset: Offset,
    acked: Offset.meta({ description: 'The user acknowledged everything up to this offset.' }),
    unacked: z.number().int().min(0),
  })
  .register(responseSchemas, { id: 'InboxResponse' });

const NodeStats = z
  .object({
    users: z.number().int().min(0).meta({ description: 'Distinct users with a session on the node.' }),
    channels: z.number().int().min(0).meta({ description: 'Channels with a subscriber on the node.' }),
    published: z.number().int().min(0).meta({ description: 'Publications the node accepted since it started.' }),
    delivered: z.number().int().min(0).meta({ description: 'Message frames the node wrote to sockets since it started.' }),
    ts: Millis.meta({ description: 'When the node took these figures.' }),
  })
  .meta({ description: 'Load figures each node reports every second.' })
  .register(responseSchemas, { id: 'NodeStats' });

const NodeEntry = z
  .object({
    node: z.string(),
    url: z.string(),
    connections: z.number().int().min(0).meta({ description: 'Open sessions on the node.' }),
    startedAt: Millis,
    stats: NodeStats.optional(),
    share: z.number().min(0).max(1).optional().meta({ description: 'The share of the hash ring (of the users) the node owns.' }),
  })
  .register(responseSchemas, { id: 'Node' });

export const NodesResponse = z.object({ nodes: z.array(NodeEntry) }).register(responseSchemas, { id: 'NodesResponse' });

export const RouteResponse = z
  .object({ user: UserId, node: z.string(), url: z.string() })
  .register(responseSchemas, { id: 'RouteResponse' });

export const ErrorResponse = z
  .object({
    error: z.object({ code: z.enum(ERROR_CODES), message: z.string().min(1) }),
  })
  .meta({ description: 'Every error: a code from the catalog (docs/errors.md) and a message for people.' })
  .register(responseSchemas, { id: 'Error' });

export const HealthResponse = z
  .object({ status: z.literal('ok'), node: z.string().optional(), gateway: z.string().optional() })
  .register(responseSchemas, { id: 'Health' });

export const ReadyResponse = z
  .object({
    status: z.enum(['ready', 'draining', 'unavailable']),
    node: z.string().optional(),
    gateway: z.string().optional(),
    connections: z.number().int().min(0).optional(),
    nodes: z.array(z.string()).optional().meta({ description: 'The gateway: the nodes it routes to.' }),
  })
  .register(responseSchemas, { id: 'Ready' });

/** The query of `GET /v1/history/{channel}`. */
export const HistoryQuery = z.object({
  since: z.coerce.number().int().min(0).default(0).meta({ description: 'Replay starts after this offset.' }),
  limit: z.coerce.number().int().min(0).default(100).meta({ description: 'At most this many messages; above 1000 counts as 1000.' }),
});

/** The query of `GET /v1/users`. */
export const UsersQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/**
 * The first thing wrong with `value` as a `schema` says, worded for a person (`"topic: must not be
 * empty"`); the parsed value when nothing is.
 */
export function check<S extends z.ZodType>(schema: S, value: unknown): { ok: true; value: z.output<S> } | { ok: false; message: string } {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0]!;
  const where = issue.path.join('.');
  return { ok: false, message: where ? `${where}: ${issue.message}` : issue.message };
}
