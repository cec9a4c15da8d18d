import {
  parseChannel,
  userChannel,
  type ChannelRef,
  type ClientFrame,
  type ErrorCode,
  type FrameId,
  type PublishFrame,
  type SendFrame,
  type ServerFrame,
  type StreamPosition,
  type SubscriptionState,
} from '@switchboard/protocol';
import { publishDenial, subscribeDenial } from '../auth/permissions.js';
import type { Identity } from '../auth/token-verifier.js';
import { ERRORS, SwitchboardError } from '../errors.js';
import type { NodeContext, SessionRef } from '../node-context.js';
import type { PublicationInput } from '../publication.js';

/** An answer to a client frame. */
export type ReplyResult = { ok: true; [k: string]: unknown } | { ok: false; code: ErrorCode; message: string };

/** What the dispatcher needs of a session. */
export interface FrameTarget extends SessionRef {
  readonly identity: Identity;
  /** Channels the session is in. */
  readonly channelCount: number;
  has(channel: string): boolean;
  position(channel: string): StreamPosition | undefined;
  /** Joins `channel`; `flush` writes what to replay and goes live (call it after the reply). */
  attach(channel: string, since?: StreamPosition): Promise<{ state: SubscriptionState; flush: () => void }>;
  detach(channel: string): boolean;
  reply(id: FrameId | undefined, result: ReplyResult): void;
  sendFrame(frame: ServerFrame): void;
}

const BAD_FRAME = ERRORS.ERR_BAD_FRAME.code;
const INBOX_OFF = 'the inbox is off on this server: acks and receipts need SWITCHBOARD_INBOX=on';
const FORBIDDEN = ERRORS.ERR_FORBIDDEN.code;

/** The answer to a publication without an `id` that succeeded: nothing is sent, nothing is built. */
const UNANSWERED: ReplyResult = { ok: true };

/**
 * Checks a `send` or `publish` frame and hands it to the publication path; resolves with its
 * answer (never rejects). The publication is taken before this returns — no await comes first
 * — so one session's publications reach the store in the order it sent them, and each channel's
 * offsets follow that order ({@link PublicationPath}). A frame without an `id` that succeeded
 * answers {@link UNANSWERED}, which `reply` sends nothing for.
 */
export async function answerPublication(session: FrameTarget, frame: SendFrame | PublishFrame, ctx: NodeContext): Promise<ReplyResult> {
  try {
    let channel: string;
    if (frame.type === 'send') {
      if (frame.receipt && !ctx.inbox) return { ok: false, code: BAD_FRAME, message: INBOX_OFF };
      // The parser checked `to` (a user id), and anyone may write to a user's channel.
      channel = userChannel(frame.to);
    } else {
      const checked = checkChannel(session, frame.channel, publishDenial);
      if ('ok' in checked) return checked;
      channel = frame.channel;
    }
    return await publish(session, channel, frame, ctx);
  } catch (err) {
    return failure(session, frame, ctx, err);
  }
}

/**
 * Carries out one client frame for a session and answers it. Every frame with an `id` gets exactly
 * one `reply`; failures without an `id` get an `error` frame.
 */
export async function handleFrame(session: FrameTarget, frame: ClientFrame, ctx: NodeContext): Promise<void> {
  try {
    switch (frame.type) {
      case 'send':
      case 'publish':
        return session.reply(frame.id, await answerPublication(session, frame, ctx));
      case 'subscribe':
        return await subscribe(session, frame, ctx);
      case 'unsubscribe': {
        // An invalid name is a malformed frame (bad_frame, as for every other frame type), not an absent subscription.
        if (!resolveChannel(session, frame.channel, frame.id)) return;
        if (!session.has(frame.channel)) {
          return session.reply(frame.id, { ok: false, code: ERRORS.ERR_NOT_FOUND.code, message: `not subscribed to ${frame.channel}` });
        }
        await ctx.presence.leave(session, frame.channel);
        session.detach(frame.channel);
        return session.reply(frame.id, { ok: true, channel: frame.channel });
      }
      case 'presence': {
        const ref = resolveChannel(session, frame.channel, frame.id, subscribeDenial);
        if (!ref) return;
        if (ref.kind === 'broadcast') return session.reply(frame.id, { ok: false, code: BAD_FRAME, message: 'broadcast has no presence' });
        const users = await ctx.presenceStore.list(frame.channel);
        return session.reply(frame.id, { ok: true, channel: frame.channel, users });
      }
      case 'ping':
        session.sendFrame({ type: 'pong' });
        if (frame.id !== undefined) session.reply(frame.id, { ok: true });
        return;
      case 'inbox': {
        if (!ctx.inbox) return session.reply(frame.id, { ok: false, code: BAD_FRAME, message: INBOX_OFF });
        return session.reply(frame.id, { ok: true, ...(await ctx.inbox.summary(session.user)) });
      }
      case 'ack': {
        if (!ctx.inbox) return session.reply(frame.id, { ok: false, code: BAD_FRAME, message: INBOX_OFF });
        if (!resolveChannel(session, frame.channel, frame.id)) return;
        const acked = await ctx.inbox.ack(session.user, frame.channel, { epoch: frame.epoch, offset: frame.offset });
        return session.reply(frame.id, { ok: true, ...acked });
      }
      default: {
        const never: never = frame;
        throw new Error(`unhandled frame ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    session.reply(frame.id, failure(session, frame, ctx, err));
  }
}

/** The answer to a frame that threw: its own code for a SwitchboardError, else `internal` (logged). */
function failure(session: FrameTarget, frame: ClientFrame, ctx: NodeContext, err: unknown): ReplyResult {
  if (err instanceof SwitchboardError) return { ok: false, code: err.code, message: err.message };
  ctx.log.error({ err, session: session.id, type: frame.type }, 'frame failed');
  return { ok: false, code: ERRORS.ERR_INTERNAL.code, message: 'internal error' };
}

type Denial = (identity: Identity, channel: string, ref: ChannelRef) => string | undefined;
type Refusal = Extract<ReplyResult, { ok: false }>;

/** `channel` parsed, or why it cannot be used: an invalid name (`bad_frame`) or what `denial` says of the token (`forbidden`). */
function checkChannel(session: FrameTarget, channel: string, denial?: Denial): ChannelRef | Refusal {
  const ref = parseChannel(channel);
  if (!ref) return { ok: false, code: BAD_FRAME, message: `invalid channel "${channel.slice(0, 140)}"` };
  const denied = denial?.(session.identity, channel, ref);
  return denied ? { ok: false, code: FORBIDDEN, message: denied } : ref;
}

/**
 * Parses `channel` and checks `denial` for it; answers the frame (and returns `undefined`) when the
 * name is invalid (`bad_frame`) or the token does not allow it (`forbidden`).
 */
function resolveChannel(session: FrameTarget, channel: string, id: FrameId | undefined, denial?: Denial): ChannelRef | undefined {
  const checked = checkChannel(session, channel, denial);
  if ('ok' in checked) {
    session.reply(id, checked);
    return undefined;
  }
  return checked;
}

/** Publishes into `channel`, which the caller has checked (its name, and that this session may write to it). */
async function publish(session: FrameTarget, channel: string, frame: SendFrame | PublishFrame, ctx: NodeContext): Promise<ReplyResult> {
  // `from` comes from the verified token, never from the frame; the idempotency key is scoped to the sender.
  const key = frame.key === undefined ? undefined : `u:${session.user}:${frame.key}`;
  const input: PublicationInput = { from: session.user, topic: frame.topic, data: frame.data, ts: Date.now() };
  if (frame.type === 'send' && frame.receipt) input.receipt = true;
  const outcome = await ctx.channels.publish(channel, input, 'ws', key);
  if (frame.id === undefined) return UNANSWERED; // nothing to answer: the reply objects are not even built
  const { epoch, offset } = outcome;
  return outcome.duplicate ? { ok: true, epoch, offset, duplicate: true } : { ok: true, epoch, offset };
}

async function subscribe(session: FrameTarget, frame: Extract<ClientFrame, { type: 'subscribe' }>, ctx: NodeContext): Promise<void> {
  const { channel } = frame;
  if (!resolveChannel(session, channel, frame.id, subscribeDenial)) return;
  if (session.has(channel)) {
    const position = session.position(channel)!;
    return session.reply(frame.id, { ok: true, channel, epoch: position.epoch, offset: position.offset });
  }
  const max = ctx.sessionOptions.maxSubscriptions;
  if (session.channelCount >= max) {
    return session.reply(frame.id, {
      ok: false,
      code: ERRORS.ERR_TOO_LARGE.code,
      message: `subscription limit reached (${max} channels per session)`,
    });
  }
  const { state, flush } = await session.attach(channel, frame.since);
  session.reply(frame.id, { ok: true, channel, ...state });
  flush();
  await ctx.presence.join(session, channel);
}
