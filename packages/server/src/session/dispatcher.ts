import { parseChannel, userChannel, type ClientFrame } from '@switchboard/protocol';
import { publishDenial, subscribeDenial } from '../auth/permissions.js';
import { SwitchboardError } from '../errors.js';
import type { NodeContext } from '../node-context.js';
import type { Session } from './session.js';

/**
 * Carries out one client frame for a session and answers it. Every frame with an `id` gets exactly
 * one `reply`; failures without an `id` get an `error` frame.
 */
export async function handleFrame(session: Session, frame: ClientFrame, ctx: NodeContext): Promise<void> {
  ctx.metrics.framesIn.inc({ type: frame.type });
  try {
    switch (frame.type) {
      case 'send':
        return await publish(session, userChannel(frame.to), frame, ctx);
      case 'publish':
        return await publish(session, frame.channel, frame, ctx);
      case 'subscribe':
        return await subscribe(session, frame.channel, frame, ctx);
      case 'unsubscribe': {
        // An invalid name is a malformed frame (bad_frame, as for every other frame type), not an absent subscription.
        if (!parseChannel(frame.channel)) {
          return session.reply(frame.id, { ok: false, code: 'bad_frame', message: `invalid channel "${frame.channel.slice(0, 140)}"` });
        }
        if (!session.has(frame.channel)) {
          return session.reply(frame.id, { ok: false, code: 'not_found', message: `not subscribed to ${frame.channel}` });
        }
        await ctx.presenceLeave(session, frame.channel);
        session.detach(frame.channel);
        return session.reply(frame.id, { ok: true, channel: frame.channel });
      }
      case 'presence': {
        const ref = parseChannel(frame.channel);
        if (!ref) return session.reply(frame.id, { ok: false, code: 'bad_frame', message: `invalid channel "${frame.channel.slice(0, 140)}"` });
        if (ref.kind === 'broadcast') return session.reply(frame.id, { ok: false, code: 'bad_frame', message: 'broadcast has no presence' });
        const denial = subscribeDenial(session.identity, frame.channel, ref);
        if (denial) return session.reply(frame.id, { ok: false, code: 'forbidden', message: denial });
        const users = await ctx.presence.list(frame.channel);
        return session.reply(frame.id, { ok: true, channel: frame.channel, users });
      }
      case 'ping':
        session.sendFrame({ type: 'pong' });
        if (frame.id !== undefined) session.reply(frame.id, { ok: true });
        return;
      default: {
        const never: never = frame;
        throw new Error(`unhandled frame ${JSON.stringify(never)}`);
      }
    }
  } catch (err) {
    if (err instanceof SwitchboardError) return session.reply(frame.id, { ok: false, code: err.code, message: err.message });
    ctx.log.error({ err, session: session.id, type: frame.type }, 'frame failed');
    session.reply(frame.id, { ok: false, code: 'internal', message: 'internal error' });
  }
}

async function publish(
  session: Session,
  channel: string,
  frame: Extract<ClientFrame, { type: 'send' | 'publish' }>,
  ctx: NodeContext,
): Promise<void> {
  const ref = parseChannel(channel);
  if (!ref) return session.reply(frame.id, { ok: false, code: 'bad_frame', message: `invalid channel "${channel.slice(0, 140)}"` });
  const denial = publishDenial(session.identity, channel, ref);
  if (denial) return session.reply(frame.id, { ok: false, code: 'forbidden', message: denial });
  // `from` comes from the verified token, never from the frame; the idempotency key is scoped to the sender.
  const key = frame.key === undefined ? undefined : `u:${session.user}:${frame.key}`;
  const outcome = await ctx.publish(channel, { from: session.user, topic: frame.topic, data: frame.data, ts: Date.now() }, 'ws', key);
  session.reply(frame.id, outcome.duplicate ? { ok: true, epoch: outcome.epoch, offset: outcome.offset, duplicate: true } : { ok: true, epoch: outcome.epoch, offset: outcome.offset });
}

async function subscribe(
  session: Session,
  channel: string,
  frame: Extract<ClientFrame, { type: 'subscribe' }>,
  ctx: NodeContext,
): Promise<void> {
  const ref = parseChannel(channel);
  if (!ref) return session.reply(frame.id, { ok: false, code: 'bad_frame', message: `invalid channel "${channel.slice(0, 140)}"` });
  const denial = subscribeDenial(session.identity, channel, ref);
  if (denial) return session.reply(frame.id, { ok: false, code: 'forbidden', message: denial });
  if (session.has(channel)) {
    const position = session.position(channel)!;
    return session.reply(frame.id, { ok: true, channel, epoch: position.epoch, offset: position.offset });
  }
  if (session.channelNames.length >= ctx.options.maxSubscriptions) {
    return session.reply(frame.id, {
      ok: false,
      code: 'too_large',
      message: `subscription limit reached (${ctx.options.maxSubscriptions} channels per session)`,
    });
  }
  const { state, flush } = await session.attach(channel, frame.since);
  session.reply(frame.id, { ok: true, channel, ...state });
  flush();
  await ctx.presenceJoin(session, channel);
}
