/**
 * The Redis pub/sub wire format, shared by RedisBroker (publish/receive) and RedisHistory (whose
 * append script publishes the `message` it just stored, in the same round trip).
 *
 * Usage:
 * ```ts
 * // publishing (RedisBroker.publish):
 * const { name, payload } = encodePubsub(prefix, routing, channel, message);
 * await pub.publish(name, payload);
 * // subscribing: interest → SUBSCRIBE channelTag(prefix, channel); broadcast → SUBSCRIBE broadcastName(prefix) once
 * // receiving (sub.on('message', (name, payload) => …)):
 * const { channel, message } = decodePubsub(prefix, name, payload); // throws WireError on a malformed payload
 * ```
 *
 * Payloads (one Redis message per BrokerMessage; the first letter is the kind):
 * - message:    `m|<offset>|<epoch>|<frame>` — the complete `message` frame JSON, written to sockets as is
 * - presence:   `p|<join|leave>|<ts>|<user>`
 * - disconnect: `d|<code>|<userLength>|<user><reason>`
 *
 * The last field takes the rest of the payload, so it may hold any character; the user of `d` is
 * length-prefixed because the reason follows it. Epochs are base64url and never contain `|`.
 * With broadcast routing the payload is prefixed with `<channelLength>:<channel>` (see
 * {@link pubsubAddress}). Lengths count UTF-16 code units (`String.length`); channel and user ids
 * are printable ASCII, where that equals bytes.
 */
import type { BrokerMessage } from './broker.js';

/**
 * How publications reach nodes. `interest`: one pub/sub channel per Switchboard channel, a node
 * subscribes to the channels it has sessions in. `broadcast`: one pub/sub channel for the whole
 * cluster, every node receives everything and filters locally. `hash`: a `user:` channel's
 * publications go to its owner node's own pub/sub channel (and to the interest channel, for
 * sessions that landed elsewhere); other channels route by interest.
 */
export type Routing = 'interest' | 'broadcast' | 'hash';

/** Where a publication on one Switchboard channel goes. */
export interface PubsubAddress {
  /** The Redis pub/sub channel to PUBLISH to. */
  name: string;
  /** Written before the payload: empty for interest routing, `<channelLength>:<channel>` for broadcast. */
  payloadPrefix: string;
  /** Hash routing: the interest channel, published to as well (no prefix), for sessions off their owner. */
  also?: string;
}

/** Thrown by {@link decodePubsub} for a payload that is not in this format. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/**
 * `${prefix}{ch:${channel}}`: the hash-tagged base of every key of a channel (`…:stream`, `…:meta`)
 * and, with interest routing, its pub/sub channel, so a script's keys and PUBLISH share one slot.
 */
export function channelTag(prefix: string, channel: string): string {
  return `${prefix}{ch:${channel}}`;
}

/** The one pub/sub channel every node listens on with broadcast routing: `${prefix}{cluster}:all`. */
export function broadcastName(prefix: string): string {
  return `${prefix}{cluster}:all`;
}

/** A node's own pub/sub channel with hash routing: `${prefix}{node:${id}}`. */
export function nodeName(prefix: string, nodeId: string): string {
  return `${prefix}{node:${nodeId}}`;
}

/**
 * Where to publish for `channel`. With broadcast routing the pub/sub channel is not in the
 * channel's slot: fine on a standalone Redis, but a Redis Cluster needs interest routing (or a
 * PUBLISH outside the history script).
 */
export function pubsubAddress(prefix: string, routing: Routing, channel: string, owner?: string): PubsubAddress {
  if (routing === 'broadcast') return { name: broadcastName(prefix), payloadPrefix: `${channel.length}:${channel}` };
  if (routing === 'hash' && owner !== undefined) {
    return { name: nodeName(prefix, owner), payloadPrefix: `${channel.length}:${channel}`, also: channelTag(prefix, channel) };
  }
  return { name: channelTag(prefix, channel), payloadPrefix: '' };
}

/** The payload of `message`, without the routing prefix. */
export function encodeMessage(message: BrokerMessage): string {
  switch (message.kind) {
    case 'message':
      return `m|${message.offset}|${message.epoch}|${message.frame}`;
    case 'presence':
      return `p|${message.event}|${message.ts}|${message.user}`;
    case 'disconnect':
      return `d|${message.code}|${message.user.length}|${message.user}${message.reason}`;
  }
}

/** The pub/sub channel and full payload that carry `message` on `channel`. */
export function encodePubsub(
  prefix: string,
  routing: Routing,
  channel: string,
  message: BrokerMessage,
  owner?: string,
): { name: string; payload: string; also?: { name: string; payload: string } } {
  const address = pubsubAddress(prefix, routing, channel, owner);
  const body = encodeMessage(message);
  const out: { name: string; payload: string; also?: { name: string; payload: string } } = { name: address.name, payload: address.payloadPrefix + body };
  if (address.also) out.also = { name: address.also, payload: body };
  return out;
}

/**
 * Decodes what arrived on the pub/sub channel `name` (either a channel's own name or the broadcast
 * channel; the routing is recognised from the name, so one decoder serves both).
 * @throws WireError when `name` is not one of ours or the payload is malformed.
 */
export function decodePubsub(prefix: string, name: string, payload: string | Buffer): { channel: string; message: BrokerMessage } {
  let text = typeof payload === 'string' ? payload : payload.toString('utf8');
  let channel: string;
  if (name === broadcastName(prefix) || name.startsWith(`${prefix}{node:`)) {
    const colon = text.indexOf(':');
    const length = colon > 0 ? parseInteger(text.slice(0, colon)) : undefined;
    if (length === undefined || colon + 1 + length > text.length) throw new WireError(`bad channel prefix in broadcast payload: ${preview(text)}`);
    channel = text.slice(colon + 1, colon + 1 + length);
    text = text.slice(colon + 1 + length);
  } else {
    const head = `${prefix}{ch:`;
    if (!name.startsWith(head) || !name.endsWith('}') || name.length <= head.length + 1) throw new WireError(`not a Switchboard pub/sub channel: ${preview(name)}`);
    channel = name.slice(head.length, -1);
  }
  return { channel, message: decodeMessage(channel, text) };
}

/** Decodes a payload without routing prefix. @throws WireError when malformed. */
export function decodeMessage(channel: string, payload: string): BrokerMessage {
  const fail = (why: string): never => {
    throw new WireError(`bad pub/sub payload on ${channel} (${why}): ${preview(payload)}`);
  };
  if (payload[1] !== '|') fail('no kind');
  // Fixed fields are split off one by one; the last field is the rest, whatever it contains.
  let rest = payload.slice(2);
  const field = (): string => {
    const bar = rest.indexOf('|');
    if (bar < 0) fail('missing field');
    const value = rest.slice(0, bar);
    rest = rest.slice(bar + 1);
    return value;
  };
  switch (payload[0]) {
    case 'm': {
      const offset = parseInteger(field()) ?? fail('bad offset');
      const epoch = field();
      if (epoch === '') fail('empty epoch');
      return { kind: 'message', epoch, offset, frame: rest };
    }
    case 'p': {
      const event = field();
      if (event !== 'join' && event !== 'leave') fail('bad presence event');
      const ts = parseInteger(field()) ?? fail('bad ts');
      return { kind: 'presence', channel, event: event as 'join' | 'leave', user: rest, ts };
    }
    case 'd': {
      const code = parseInteger(field()) ?? fail('bad code');
      const length = parseInteger(field()) ?? fail('bad user length');
      if (length > rest.length) fail('user longer than payload');
      return { kind: 'disconnect', code, user: rest.slice(0, length), reason: rest.slice(length) };
    }
    default:
      return fail('unknown kind');
  }
}

/** A non-negative decimal integer without sign, exponent or leading junk; else undefined. */
function parseInteger(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
