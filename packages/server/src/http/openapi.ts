import { createRequire } from 'node:module';
import { z } from 'zod';
import { ERRORS, type ErrorName } from '../errors.js';
import * as api from './api-schemas.js';

/**
 * The OpenAPI 3.1 document of the HTTP API (`GET /v1/openapi.json`, nodes and gateway), generated
 * from the schemas in api-schemas.ts that validate the requests and type the answers. Built once
 * per process, on first ask.
 */

const REF = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const JSON_TYPE = 'application/json';

type Operation = Record<string, unknown>;

/** A response whose body is a component. */
function body(description: string, id: string) {
  return { description, content: { [JSON_TYPE]: { schema: REF(id) } } };
}

/** The error responses of an operation, from the catalog (one status may carry several codes). */
function errors(...names: ErrorName[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const { status, description } = ERRORS[name];
    out[String(status)] = body(description, 'Error');
  }
  return out;
}

/** Query or path parameters from an object schema's properties (as a request would send them). */
function parameters(where: 'query' | 'path', schema: z.ZodObject, required: readonly string[] = []): unknown[] {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input' }) as { properties: Record<string, Record<string, unknown>> };
  return Object.entries(json.properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: where, required: where === 'path' || required.includes(name), description, schema: rest };
  });
}

function pathParameter(name: string, schema: z.ZodType): unknown {
  return parameters('path', z.object({ [name]: schema }))[0];
}

function jsonRequest(id: string) {
  return { required: true, content: { [JSON_TYPE]: { schema: REF(id) } } };
}

const KEYED = [{ apiKey: [] }];

/** 429 of every `/v1` route: the caller's address is over its HTTP limits (http-limits.ts). */
function rateLimited(): Record<string, unknown> {
  const retryAfter = { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 1 } };
  return { '429': { ...body(ERRORS.ERR_RATE_LIMITED.description, 'Error'), headers: { 'Retry-After': retryAfter } } };
}

function paths(): Record<string, Record<string, Operation>> {
  const common = { ...errors('ERR_UNAUTHORIZED', 'ERR_UNAVAILABLE', 'ERR_INTERNAL'), ...rateLimited() };
  return {
    '/v1/publish': {
      post: {
        operationId: 'publish',
        summary: 'Publish a message to a channel',
        description: 'Answers 200 only once the publication is kept in history and handed to the broker.',
        security: KEYED,
        requestBody: jsonRequest('PublishRequest'),
        responses: { '200': body('Kept and on its way', 'PublishResponse'), ...errors('ERR_BAD_FRAME', 'ERR_TOO_LARGE'), ...common },
      },
    },
    '/v1/disconnect': {
      post: {
        operationId: 'disconnect',
        summary: 'Close every session of a user with 4003, on every node',
        security: KEYED,
        requestBody: jsonRequest('DisconnectRequest'),
        responses: { '200': body('Sent to the nodes', 'DisconnectResponse'), ...errors('ERR_BAD_FRAME', 'ERR_TOO_LARGE'), ...common },
      },
    },
    '/v1/presence/{channel}': {
      get: {
        operationId: 'presence',
        summary: 'Who is in a channel',
        security: KEYED,
        parameters: [pathParameter('channel', api.ChannelName)],
        responses: { '200': body('The channel’s users', 'PresenceResponse'), ...errors('ERR_BAD_FRAME'), ...common },
      },
    },
    '/v1/users': {
      get: {
        operationId: 'usersOnline',
        summary: 'Users online anywhere in the cluster',
        security: KEYED,
        parameters: parameters('query', api.UsersQuery),
        responses: { '200': body('Some or all users online', 'UsersResponse'), ...errors('ERR_BAD_FRAME'), ...common },
      },
    },
    '/v1/users/{user}': {
      get: {
        operationId: 'user',
        summary: 'A user’s live sessions and the nodes they are on',
        security: KEYED,
        parameters: [pathParameter('user', api.UserId)],
        responses: { '200': body('The user', 'UserResponse'), ...errors('ERR_BAD_FRAME'), ...common },
      },
    },
    '/v1/history/{channel}': {
      get: {
        operationId: 'history',
        summary: 'A channel’s kept publications after an offset',
        security: KEYED,
        parameters: [pathParameter('channel', api.ChannelName), ...parameters('query', api.HistoryQuery)],
        responses: { '200': body('Oldest first', 'HistoryResponse'), ...errors('ERR_BAD_FRAME'), ...common },
      },
    },
    '/v1/inbox/{user}': {
      get: {
        operationId: 'inbox',
        summary: 'A user’s inbox: its latest offset and what the user acknowledged',
        description: 'Only with the inbox on (`SWITCHBOARD_INBOX=on`); 404 otherwise.',
        security: KEYED,
        parameters: [pathParameter('user', api.UserId)],
        responses: { '200': body('The inbox', 'InboxResponse'), ...errors('ERR_BAD_FRAME', 'ERR_NOT_FOUND'), ...common },
      },
    },
    '/v1/nodes': {
      get: {
        operationId: 'nodes',
        summary: 'The live nodes, their load and their share of the hash ring',
        security: KEYED,
        responses: { '200': body('Sorted by id', 'NodesResponse'), ...common },
      },
    },
    '/v1/route': {
      get: {
        operationId: 'route',
        summary: 'Where a user should connect (hash routing)',
        description:
          'With the API key, for any `user`; with a client token (the same bearer header), for the token’s own user only, so clients never hold the API key.',
        security: [{ apiKey: [] }, { clientToken: [] }],
        parameters: parameters('query', z.object({ user: api.UserId.optional() })),
        responses: { '200': body('The owner node', 'RouteResponse'), ...errors('ERR_BAD_FRAME', 'ERR_FORBIDDEN'), ...common },
      },
    },
    '/v1/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        security: [],
        responses: { '200': { description: 'OpenAPI 3.1', content: { [JSON_TYPE]: { schema: { type: 'object' } } } }, ...rateLimited() },
      },
    },
    '/healthz': {
      get: {
        operationId: 'health',
        summary: 'Alive',
        security: [],
        responses: { '200': body('The process answers', 'Health') },
      },
    },
    '/readyz': {
      get: {
        operationId: 'ready',
        summary: 'Ready for traffic: engines reachable and not draining',
        security: [],
        responses: { '200': body('Ready', 'Ready'), '503': body('Draining or an engine is unreachable', 'Ready') },
      },
    },
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics (docs/operations.md lists them)',
        security: [],
        responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    '/ws': {
      get: {
        operationId: 'websocket',
        summary: 'The WebSocket endpoint (the path is configurable)',
        description:
          'Send an `Upgrade: websocket` request with `?token=<JWT>` or `Authorization: Bearer <JWT>`; the frames are in docs/protocol.md. A plain request gets 426.',
        security: [],
        parameters: parameters(
          'query',
          z.object({ token: z.string().optional(), resume: z.string().optional(), batch: z.enum(['1']).optional() }),
        ),
        responses: {
          '101': { description: 'Switching to WebSocket' },
          ...errors('ERR_UPGRADE_REQUIRED', 'ERR_FORBIDDEN'),
          '503': body('Draining or at `maxConnections`', 'Error'),
        },
      },
    },
  };
}

/** The components: every named schema of api-schemas.ts, as JSON Schema 2020-12 (OpenAPI 3.1's dialect). */
function schemas(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const uri = (id: string) => `#/components/schemas/${id}`;
  for (const [registry, io] of [
    [api.requestSchemas, 'input'],
    [api.responseSchemas, 'output'],
  ] as const) {
    const generated = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri }) as {
      schemas: Record<string, Record<string, unknown>>;
    };
    for (const [id, schema] of Object.entries(generated.schemas)) {
      // The dialect is the document's; a component's own `$id` would be a fragment, which 2020-12 forbids.
      const { $schema: _dialect, $id: _id, ...rest } = schema;
      out[id] = rest;
    }
  }
  return out;
}

const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

let document: unknown;

/** The document, built on first call. */
export function openApiDocument(): unknown {
  document ??= {
    openapi: '3.1.1',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Switchboard HTTP API',
      version: VERSION,
      description:
        'The HTTP API of a Switchboard node or gateway: every node answers for the whole cluster. The WebSocket protocol is in docs/protocol.md.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    security: KEYED,
    paths: paths(),
    components: {
      schemas: schemas(),
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'The API key (`SWITCHBOARD_API_KEY`).' },
        clientToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A client token, for `GET /v1/route` only.' },
      },
    },
  };
  return document;
}
