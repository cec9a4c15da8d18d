import { z } from 'zod';
import { ID_PATTERN, type ClientFrame, type FrameId } from '@switchboard/protocol';

const id = z.union([z.string().min(1).max(64), z.number().int().refine(Number.isSafeInteger, 'must be a safe integer')]);
const topic = z.string().min(1, 'topic must not be empty').max(128, 'topic is longer than 128 characters');
const channel = z.string().min(1).max(140);
/** Idempotency key of a send or publish (extension of protocol v1, see docs/protocol.md). */
const key = z.string().min(1).max(128).optional();
const position = z.object({
  epoch: z.string().max(64),
  offset: z.number().int().min(0).refine(Number.isSafeInteger, 'must be a safe integer'),
});

const schemas = {
  send: z.object({ to: z.string().regex(ID_PATTERN, 'to must be a user id'), topic, data: z.unknown().optional(), key }),
  publish: z.object({ channel, topic, data: z.unknown().optional(), key }),
  subscribe: z.object({ channel, since: position.optional() }),
  unsubscribe: z.object({ channel }),
  presence: z.object({ channel }),
  ping: z.object({}),
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
  return { ok: true, frame };
}
