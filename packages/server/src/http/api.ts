import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloseCode, parseChannel, userChannel } from '@switchboard/protocol';
import { SwitchboardError } from '../errors.js';
import type { History } from '../history/history.js';
import type { InboxService } from '../inbox/inbox-service.js';
import type { Logger } from 'pino';
import type { Channels } from '../node-context.js';
import type { Broker } from '../broker/broker.js';
import type { PresenceStore } from '../presence/presence-store.js';
import type { Registry } from '../registry/registry.js';
import type { Route } from '../registry/node-ring.js';
import { ApiKeyCheck } from './api-key.js';
import { routeUser } from './route-auth.js';
import type { Verifier } from '../auth/token-verifier.js';
import { readJsonBody, sendError, sendJson, sendThrown } from './respond.js';
import type { z } from 'zod';
import * as schemas from './api-schemas.js';
import { openApiDocument } from './openapi.js';

/** Writes a 200 whose body the schema of the route types (the OpenAPI document is made from it). */
function answer<S extends z.ZodType>(res: ServerResponse, _schema: S, body: z.input<S>): void {
  sendJson(res, 200, body);
}

/** `value` as `schema` has it, or `bad_frame` with the first thing wrong. */
function valid<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schemas.check(schema, value);
  if (!result.ok) throw new SwitchboardError('ERR_BAD_FRAME', `${what}: ${result.message}`);
  return result.value;
}

/** What the `/v1` API works with. */
export interface ApiDeps {
  nodeId: string;
  log: Logger;
  /** The key every call must carry; without one, `/v1` answers 401. */
  apiKey: string | undefined;
  /** Largest request body. */
  maxBodyBytes: number;
  channels: Channels;
  presence: PresenceStore;
  history: History;
  /** The inbox, when it is on: `GET /v1/inbox/{user}`. */
  inbox: InboxService | undefined;
  broker: Broker;
  registry: Registry;
  /** This node's public URL. */
  url: () => string;
  /** Verifies client tokens (for `GET /v1/route` asked with a client token). */
  verifier: Verifier;
  /** This node's open sessions now (the registry's copy is refreshed every few seconds). */
  connections: () => number;
  /**
   * The owner of a user on the cluster's hash ring, for `GET /v1/route`; `undefined` when the ring
   * is empty. Absent: every user's owner is this node (one node).
   */
  route?: (user: string) => Route | undefined;
  /** Each live node's share of the hash ring, for `GET /v1/nodes`. */
  shares?: () => Map<string, number>;
}

const MAX_HISTORY_LIMIT = 1000;

/**
 * The `/v1` HTTP API of PROTOCOL.md. Every call needs `Authorization: Bearer <API key>`; errors
 * are `{"error":{code,message}}` with the catalog's status.
 */
export class HttpApi {
  private readonly key: ApiKeyCheck;

  constructor(private readonly deps: ApiDeps) {
    this.key = new ApiKeyCheck(deps.apiKey);
  }

  /** Handles a request whose path starts with `/v1/`. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    // The document describes the API and holds no data: open, like the probes.
    if (url.pathname === '/v1/openapi.json' && req.method === 'GET') return sendJson(res, 200, openApiDocument());
    if (url.pathname === '/v1/route' && req.method === 'GET') {
      // Open to clients with their own token too (see routeUser), so it comes before the key check.
      try {
        const user = await routeUser(req, url, this.key, this.deps.verifier);
        const route = this.deps.route?.(user) ?? { node: this.deps.nodeId, url: this.deps.url() };
        return answer(res, schemas.RouteResponse, { user, node: route.node, url: route.url });
      } catch (err) {
        return sendThrown(res, err);
      }
    }
    if (!this.key.configured) return sendError(res, 'ERR_UNAUTHORIZED', 'no API key is configured on this node: set SWITCHBOARD_API_KEY');
    if (!this.key.allows(req)) return sendError(res, 'ERR_UNAUTHORIZED', 'missing or wrong API key (Authorization: Bearer <key>)');
    try {
      await this.route(req, res, url);
    } catch (err) {
      if (!(err instanceof SwitchboardError)) this.deps.log.error({ err, path: url.pathname }, 'api call failed');
      sendThrown(res, err);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const deps = this.deps;
    const method = req.method ?? 'GET';
    const parts = url.pathname.split('/').slice(2).map(decodeSegment);
    const [resource, arg] = parts;
    if (method === 'POST' && resource === 'publish' && parts.length === 1) return this.publish(req, res);
    if (method === 'POST' && resource === 'disconnect' && parts.length === 1) return this.disconnect(req, res);
    if (method === 'GET' && parts.length === 2 && arg !== undefined) {
      if (resource === 'presence') {
        const channel = channelArg(arg);
        if (channel.kind === 'broadcast') throw new SwitchboardError('ERR_BAD_FRAME', 'broadcast has no presence');
        return answer(res, schemas.PresenceResponse, { channel: arg, users: await deps.presence.list(arg) });
      }
      if (resource === 'users') {
        const user = valid(schemas.UserId, arg, 'user');
        const sessions = await deps.presence.sessions(user);
        return answer(res, schemas.UserResponse, { user, online: sessions.length > 0, sessions });
      }
      if (resource === 'history') return this.history(res, arg, url);
      if (resource === 'inbox') {
        const user = valid(schemas.UserId, arg, 'user');
        if (!deps.inbox) throw new SwitchboardError('ERR_NOT_FOUND', 'the inbox is off on this server: set SWITCHBOARD_INBOX=on');
        return answer(res, schemas.InboxResponse, await deps.inbox.summary(user));
      }
    }
    if (method === 'GET' && parts.length === 1 && resource === 'users') {
      const { limit } = valid(schemas.UsersQuery, Object.fromEntries(url.searchParams), 'query');
      return answer(res, schemas.UsersResponse, await deps.presence.online(limit));
    }
    if (method === 'GET' && parts.length === 1 && resource === 'nodes') {
      const shares = deps.shares?.();
      const nodes = (await deps.registry.nodes()).map((n) => {
        const share = shares?.get(n.node);
        const connections = n.node === deps.nodeId ? deps.connections() : n.connections;
        return share === undefined ? { ...n, connections } : { ...n, connections, share };
      });
      return answer(res, schemas.NodesResponse, { nodes });
    }
    throw new SwitchboardError('ERR_NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  private async publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { channel, topic, data, from, key } = valid(schemas.PublishRequest, await readJsonBody(req, this.deps.maxBodyBytes), 'body');
    const outcome = await this.deps.channels.publish(
      channel,
      { from: from ?? null, topic, data: data ?? null, ts: Date.now() },
      'http',
      key === undefined ? undefined : `api:${key}`,
    );
    const body = { channel, epoch: outcome.epoch, offset: outcome.offset };
    answer(res, schemas.PublishResponse, outcome.duplicate ? { ...body, duplicate: true } : body);
  }

  private async disconnect(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { user } = valid(schemas.DisconnectRequest, await readJsonBody(req, this.deps.maxBodyBytes), 'body');
    const sessions = await this.deps.presence.sessions(user);
    try {
      await this.deps.broker.publish(userChannel(user), {
        kind: 'disconnect',
        user,
        code: CloseCode.FORBIDDEN,
        reason: 'disconnected by the server',
      });
    } catch {
      throw new SwitchboardError('ERR_UNAVAILABLE', 'broker unavailable');
    }
    answer(res, schemas.DisconnectResponse, { user, sessions: sessions.length });
  }

  private async history(res: ServerResponse, channel: string, url: URL): Promise<void> {
    channelArg(channel);
    const query = valid(schemas.HistoryQuery, Object.fromEntries(url.searchParams), 'query');
    const since = query.since;
    const limit = Math.min(query.limit, MAX_HISTORY_LIMIT);
    let page;
    try {
      page = await this.deps.history.read(channel, since, limit);
    } catch {
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable');
    }
    answer(res, schemas.HistoryResponse, {
      channel,
      epoch: page.epoch,
      offset: page.offset,
      messages: page.publications.map((p) => ({ type: 'message' as const, ...p })),
    });
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new SwitchboardError('ERR_BAD_FRAME', 'bad percent-encoding in path');
  }
}

function channelArg(channel: string) {
  const ref = parseChannel(channel);
  if (!ref)
    throw new SwitchboardError('ERR_BAD_FRAME', `invalid channel "${channel.slice(0, 140)}": use user:<id>, group:<id> or broadcast`);
  return ref;
}
