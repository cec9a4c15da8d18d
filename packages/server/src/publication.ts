import type { MessageFrame, ReceiptFrame } from '@switchboard/protocol';

/** A message accepted into a channel: it has its epoch and offset. */
export interface Publication {
  channel: string;
  epoch: string;
  offset: number;
  from: string | null;
  topic: string;
  data: unknown;
  ts: number;
  /** The sender asked for a read receipt (`send` with `receipt: true`; inbox on). */
  receipt?: true;
}

/** What a publisher hands in before the history assigns epoch and offset. */
export interface PublicationInput {
  from: string | null;
  topic: string;
  data: unknown;
  ts: number;
  receipt?: true;
}

/**
 * The topic of a receipt kept in a sender's inbox (`data` is the acked message's position). Topics
 * starting with `$` are the server's: clients and the HTTP API cannot publish them.
 */
export const RECEIPT_TOPIC = '$receipt';

/** What a receipt publication carries: the position of the message that was acked. */
export interface ReceiptData {
  channel: string;
  epoch: string;
  offset: number;
}

/**
 * `input` placed at `epoch`/`offset` of `channel`. Written out, not spread: every publication has
 * one shape (one hidden class), whatever extra its input carried.
 */
export function publicationAt(channel: string, epoch: string, offset: number, input: PublicationInput): Publication {
  const pub: Publication = { channel, epoch, offset, from: input.from, topic: input.topic, data: input.data, ts: input.ts };
  if (input.receipt) pub.receipt = true;
  return pub;
}

/**
 * The wire frame for a publication. Built once per publication, never once per recipient. A
 * receipt kept in an inbox goes out as a `receipt` frame, with its own place in the inbox.
 */
export function messageFrame(pub: Publication): string {
  if (pub.topic === RECEIPT_TOPIC) return receiptFrame(pub);
  const frame: MessageFrame = {
    type: 'message',
    channel: pub.channel,
    epoch: pub.epoch,
    offset: pub.offset,
    from: pub.from,
    topic: pub.topic,
    data: pub.data,
    ts: pub.ts,
  };
  if (pub.receipt) frame.receipt = true;
  return JSON.stringify(frame);
}

function receiptFrame(pub: Publication): string {
  const acked = pub.data as ReceiptData;
  const frame: ReceiptFrame = {
    type: 'receipt',
    channel: acked.channel,
    epoch: acked.epoch,
    offset: acked.offset,
    user: pub.from ?? '',
    ts: pub.ts,
    inbox: { channel: pub.channel, epoch: pub.epoch, offset: pub.offset },
  };
  return JSON.stringify(frame);
}

/**
 * Deepest nesting of arrays and objects accepted in `data`. `JSON.stringify` recurses and throws
 * past a few thousand levels, which would leave an unserialisable publication in history.
 */
export const MAX_DATA_DEPTH = 128;

/**
 * True when `value` nests arrays/objects deeper than `max` levels. Recursive, but never more than
 * `max` calls deep (it answers as soon as it gets there), so it cannot overflow the stack.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max <= 0) return true;
  if (Array.isArray(value)) {
    for (const child of value) if (nestedDeeperThan(child, max - 1)) return true;
    return false;
  }
  for (const key of Object.keys(value)) if (nestedDeeperThan((value as Record<string, unknown>)[key], max - 1)) return true;
  return false;
}
