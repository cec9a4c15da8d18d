import type { IncomingMessage, ServerResponse } from 'node:http';
import { CloseCode, isValidId, parseChannel, userChannel } from '@switchboard/protocol';
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
    if (url.pathname === '/v1/route' && req.method === 'GET') {
      // Open to clients with their own token too (see routeUser), so it comes before the key check.
      try {
        const user = await routeUser(req, url, this.key, this.deps.verifier);
        const route = this.deps.route?.(user) ?? { node: this.deps.nodeId, url: this.deps.url() };
        return sendJson(res, 200, { user, node: route.node, url: route.url });
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
        return sendJson(res, 200, { channel: arg, users: await deps.presence.list(arg) });
      }
      if (resource === 'users') {
        if (!isValidId(arg)) throw new SwitchboardError('ERR_BAD_FRAME', 'invalid user id');
        const sessions = await deps.presence.sessions(arg);
        return sendJson(res, 200, { user: arg, online: sessions.length > 0, sessions });
      }
      if (resource === 'history') return this.history(res, arg, url);
      if (resource === 'inbox') {
        if (!isValidId(arg)) throw new SwitchboardError('ERR_BAD_FRAME', 'invalid user id');
        if (!deps.inbox) throw new SwitchboardError('ERR_NOT_FOUND', 'the inbox is off on this server: set SWITCHBOARD_INBOX=on');
        return sendJson(res, 200, await deps.inbox.summary(arg));
      }
    }
    if (method === 'GET' && parts.length === 1 && resource === 'nodes') {
      const nodes = await this.deps.registry.nodes();
      for (const n of nodes) if (n.node === deps.nodeId) n.connections = this.deps.connections();
      return sendJson(res, 200, { nodes });
    }
    throw new SwitchboardError('ERR_NOT_FOUND', `no route ${method} ${url.pathname}`);
  }

  private async publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, this.deps.maxBodyBytes);
    const { channel, topic, data, from, key } = body;
    if (typeof channel !== 'string') throw new SwitchboardError('ERR_BAD_FRAME', 'channel must be a string');
    channelArg(channel);
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > 128) {
      throw new SwitchboardError('ERR_BAD_FRAME', 'topic must be a string of 1-128 characters');
    }
    if (topic.startsWith('$')) throw new SwitchboardError('ERR_BAD_FRAME', 'topics starting with $ are reserved for the server');
    if (from !== undefined && from !== null && (typeof from !== 'string' || !isValidId(from))) {
      throw new SwitchboardError('ERR_BAD_FRAME', 'from must be a user id or null');
    }
    if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 128)) {
      throw new SwitchboardError('ERR_BAD_FRAME', 'key must be a string of 1-128 characters');
    }
    const outcome = await this.deps.channels.publish(
      channel,
      { from: (from as string | undefined) ?? null, topic, data: data ?? null, ts: Date.now() },
      'http',
      key === undefined ? undefined : `api:${key}`,
    );
    sendJson(res, 200, { channel, epoch: outcome.epoch, offset: outcome.offset, ...(outcome.duplicate ? { duplicate: true } : {}) });
  }

  private async disconnect(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJsonBody(req, this.deps.maxBodyBytes);
    const user = body.user;
    if (typeof user !== 'string' || !isValidId(user)) throw new SwitchboardError('ERR_BAD_FRAME', 'user must be a user id');
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
    sendJson(res, 200, { user, sessions: sessions.length });
  }

  private async history(res: ServerResponse, channel: string, url: URL): Promise<void> {
    channelArg(channel);
    const since = intParam(url, 'since', 0);
    const limit = Math.min(intParam(url, 'limit', 100), MAX_HISTORY_LIMIT);
    let page;
    try {
      page = await this.deps.history.read(channel, since, limit);
    } catch {
      throw new SwitchboardError('ERR_UNAVAILABLE', 'history unavailable');
    }
    sendJson(res, 200, {
      channel,
      epoch: page.epoch,
      offset: page.offset,
      messages: page.publications.map((p) => ({ type: 'message', ...p })),
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

function intParam(url: URL, name: string, fallback: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new SwitchboardError('ERR_BAD_FRAME', `${name} must be a non-negative integer`);
  return n;
}
