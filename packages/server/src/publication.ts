import type { MessageFrame } from '@switchboard/protocol';

/** A message accepted into a channel: it has its epoch and offset. */
export interface Publication {
  channel: string;
  epoch: string;
  offset: number;
  from: string | null;
  topic: string;
  data: unknown;
  ts: number;
}

/** What a publisher hands in before the history assigns epoch and offset. */
export interface PublicationInput {
  from: string | null;
  topic: string;
  data: unknown;
  ts: number;
}

/** The wire frame for a publication. Built once per publication, never once per recipient. */
export function messageFrame(pub: Publication): string {
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
  return JSON.stringify(frame);
}
