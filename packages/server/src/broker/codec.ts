/**
 * The cluster wire format: how a {@link BrokerMessage} on a channel travels between nodes as bytes,
 * whatever the transport (Redis pub/sub, AMQP, NATS, the in-process bus). Written once, here.
 *
 * One message is one payload; the first byte is the kind, then the channel, length-prefixed (it
 * may contain `|`), then the kind's fields:
 * - message:    `m<channelLength>:<channel>|<offset>|<epoch>|<frame>` — the complete `message` frame
 *   (UTF-8 JSON), which a receiving node writes to sockets as is, without copying it
 * - presence:   `p<channelLength>:<channel>|<join|leave>|<ts>|<user>`
 * - disconnect: `d<channelLength>:<channel>|<code>|<userLength>|<user><reason>`
 *
 * The last field takes the rest of the payload, so it may hold any character. Channel names and
 * user ids are printable ASCII (one byte per character) and epochs are base64url (never `|`), so
 * the header is ASCII and lengths count bytes. The Redis append script builds `message` payloads
 * in Lua from {@link messageHead}; a test keeps the two byte for byte equal.
 */
import type { BrokerMessage } from './broker.js';

/** Thrown by {@link decode} for a payload that is not in this format. */
export class WireError extends Error {
  readonly code = 'ERR_WIRE_FORMAT';

  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** A decoded payload. */
export interface Envelope {
  channel: string;
  message: BrokerMessage;
}

const BAR = 0x7c;
const COLON = 0x3a;

/** The start of a `message` payload on `channel`, up to (and with) the `|` before the offset. */
export function messageHead(channel: string): string {
  return `m${channel.length}:${channel}|`;
}

/** The bytes that carry `message` on `channel`. */
export function encode(channel: string, message: BrokerMessage): Buffer {
  switch (message.kind) {
    case 'message': {
      const head = `${messageHead(channel)}${message.offset}|${message.epoch}|`;
      const out = Buffer.allocUnsafe(head.length + message.frame.length);
      out.write(head, 0, 'latin1');
      message.frame.copy(out, head.length);
      return out;
    }
    case 'presence':
      return Buffer.from(`p${channel.length}:${channel}|${message.event}|${message.ts}|${message.user}`, 'latin1');
    case 'disconnect':
      return Buffer.from(`d${channel.length}:${channel}|${message.code}|${message.user.length}|${message.user}${message.reason}`, 'utf8');
  }
}

/**
 * Reads what {@link encode} wrote. A `message`'s frame is a view into `bytes`, not a copy.
 * @throws WireError when the payload is malformed.
 */
export function decode(bytes: Buffer): Envelope {
  const fail = (why: string): never => {
    throw new WireError(`bad cluster payload (${why}): ${preview(bytes)}`);
  };
  const kind = bytes[0];
  const colon = bytes.indexOf(COLON, 1);
  if (colon < 2 || colon > 5) fail('no channel length');
  const length = parseInteger(bytes.toString('latin1', 1, colon)) ?? fail('bad channel length');
  let at = colon + 1 + length;
  if (at >= bytes.length || bytes[at] !== BAR) fail('channel longer than payload');
  const channel = bytes.toString('latin1', colon + 1, at);
  at++;
  const field = (): string => {
    const bar = bytes.indexOf(BAR, at);
    if (bar < 0) fail('missing field');
    const value = bytes.toString('latin1', at, bar);
    at = bar + 1;
    return value;
  };
  switch (kind) {
    case 0x6d /* m */: {
      const offset = parseInteger(field()) ?? fail('bad offset');
      const epoch = field();
      if (epoch === '') fail('empty epoch');
      return { channel, message: { kind: 'message', epoch, offset, frame: bytes.subarray(at) } };
    }
    case 0x70 /* p */: {
      const event = field();
      if (event !== 'join' && event !== 'leave') fail('bad presence event');
      const ts = parseInteger(field()) ?? fail('bad ts');
      return { channel, message: { kind: 'presence', channel, event: event as 'join' | 'leave', user: bytes.toString('latin1', at), ts } };
    }
    case 0x64 /* d */: {
      const code = parseInteger(field()) ?? fail('bad code');
      const userLength = parseInteger(field()) ?? fail('bad user length');
      if (at + userLength > bytes.length) fail('user longer than payload');
      const user = bytes.toString('latin1', at, at + userLength);
      return { channel, message: { kind: 'disconnect', code, user, reason: bytes.toString('utf8', at + userLength) } };
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

function preview(bytes: Buffer): string {
  const text = bytes.toString('utf8', 0, Math.min(bytes.length, 80));
  return JSON.stringify(bytes.length > 80 ? `${text}…` : text);
}
