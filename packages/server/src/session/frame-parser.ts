import { z } from 'zod';
import { ID_PATTERN, type ClientFrame, type FrameId } from '@switchboard/protocol';

const id = z.union([z.string().min(1).max(64), z.number().int().refine(Number.isSafeInteger, 'must be a safe integer')]);
const topic = z
  .string()
  .min(1, 'topic must not be empty')
  .max(128, 'topic is longer than 128 characters')
  .refine((t) => !t.startsWith('$'), 'topics starting with $ are reserved for the server');
const channel = z.string().min(1).max(140);
/** Idempotency key of a send or publish (extension of protocol v1, see docs/protocol.md). */
const key = z.string().min(1).max(128).optional();
const position = z.object({
  epoch: z.string().max(64),
  offset: z.number().int().min(0).refine(Number.isSafeInteger, 'must be a safe integer'),
});

const schemas = {
  send: z.object({
    to: z.string().regex(ID_PATTERN, 'to must be a user id'),
    topic,
    data: z.unknown().optional(),
    key,
    receipt: z.boolean().optional(),
  }),
  publish: z.object({ channel, topic, data: z.unknown().optional(), key }),
  subscribe: z.object({ channel, since: position.optional() }),
  unsubscribe: z.object({ channel }),
  presence: z.object({ channel }),
  ping: z.object({}),
  inbox: z.object({}),
  ack: z.object({
    channel,
    epoch: z.string().min(1).max(64),
    offset: z.number().int().min(0).refine(Number.isSafeInteger, 'must be a safe integer'),
  }),
} satisfies { [T in ClientFrame['type']]: z.ZodType };

/** Outcome of parsing one client frame. */
export type ParseResult = { ok: true; frame: ClientFrame } | { ok: false; id: FrameId | undefined; message: string };

/**
 * Parses and validates one client frame (text). Never throws: anything wrong yields a message for
 * a `bad_frame` error, with the frame's `id` when that much could be read.
 */
export function parseClientFrame(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, id: undefined, message: 'frame is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, id: undefined, message: 'frame must be a JSON object' };
  }
  const raw = value as Record<string, unknown>;
  return quickPublication(raw) ?? validateFrame(raw);
}

/** A valid id: a string of 1–64 characters or a safe integer. */
function isFrameId(v: unknown): v is FrameId {
  return typeof v === 'string' ? v.length >= 1 && v.length <= 64 : Number.isSafeInteger(v);
}

/**
 * The hot path: a well-formed `send` or `publish` checked by hand, field by field, without the
 * allocations of a schema parse. Anything it does not accept outright goes to {@link validateFrame},
 * which decides (and words the error); the two agree on every frame they both accept (tested).
 */
function quickPublication(raw: Record<string, unknown>): ParseResult | undefined {
  const { type, topic, key, id } = raw;
  if (typeof topic !== 'string' || topic.length < 1 || topic.length > 128 || topic.charCodeAt(0) === 36 /* $ */) return undefined;
  if (key !== undefined && (typeof key !== 'string' || key.length < 1 || key.length > 128)) return undefined;
  if (id !== undefined && !isFrameId(id)) return undefined;
  const data = raw.data === undefined ? null : raw.data;
  let frame: ClientFrame;
  if (type === 'send') {
    const to = raw.to;
    const receipt = raw.receipt;
    if (typeof to !== 'string' || !ID_PATTERN.test(to) || (receipt !== undefined && typeof receipt !== 'boolean')) return undefined;
    frame = { type, to, topic, data };
    if (receipt === true) frame.receipt = true;
  } else if (type === 'publish') {
    const channel = raw.channel;
    if (typeof channel !== 'string' || channel.length < 1 || channel.length > 140) return undefined;
    frame = { type, channel, topic, data };
  } else {
    return undefined;
  }
  if (key !== undefined) frame.key = key as string;
  if (id !== undefined) frame.id = id as FrameId;
  return { ok: true, frame };
}

/** @internal Validates a parsed frame against its type's schema (exported for the test that compares it with the hot path). */
export function validateFrame(raw: Record<string, unknown>): ParseResult {
  let frameId: FrameId | undefined;
  if (Object.hasOwn(raw, 'id') && raw.id !== undefined) {
    const parsedId = id.safeParse(raw.id);
    if (!parsedId.success) return { ok: false, id: undefined, message: 'id must be a string of 1-64 characters or a safe integer' };
    frameId = parsedId.data;
  }
  const type = Object.hasOwn(raw, 'type') ? raw.type : undefined;
  if (typeof type !== 'string' || !Object.hasOwn(schemas, type)) {
    return { ok: false, id: frameId, message: typeof type === 'string' ? `unknown type "${type.slice(0, 32)}"` : 'type must be a string' };
  }
  const parsed = schemas[type as keyof typeof schemas].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.join('.');
    return { ok: false, id: frameId, message: path ? `${path}: ${issue.message}` : issue.message };
  }
  const frame = { ...parsed.data, type } as ClientFrame;
  if (frameId !== undefined) frame.id = frameId;
  if ((type === 'send' || type === 'publish') && (frame as { data?: unknown }).data === undefined) {
    (frame as { data?: unknown }).data = null;
  }
  // `receipt: false` asks for nothing: one shape for both paths.
  if (frame.type === 'send' && frame.receipt !== true) delete frame.receipt;
  return { ok: true, frame };
}
