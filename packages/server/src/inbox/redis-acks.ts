import type { RedisClient } from '../redis/connect.js';
import type { StreamPosition } from '@switchboard/protocol';
import { channelTag } from '../redis/keys.js';
import { defineScripts, type ScriptCaller } from '../redis/scripts.js';
import type { AckStore } from './acks.js';

/**
 * KEYS: the channel's ack hash. ARGV: epoch, offset, TTL ms. Moves the ack forward (or to another
 * epoch) and refreshes its TTL; returns the previous {epoch, offset}, or an empty list.
 */
const ADVANCE = `
local held = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
local offset = tonumber(ARGV[2])
if not held[1] or held[1] ~= ARGV[1] or tonumber(held[2]) < offset then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', offset)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if held[1] then return {held[1], tonumber(held[2])} end
return {}
`;

/** Acks in Redis: one hash per inbox, `${prefix}{ch:user:<id>}:acked`, in the inbox's hash slot. */
export class RedisAckStore implements AckStore {
  private readonly scripts: Record<'ackAdvance', ScriptCaller>;

  /** `ttlMs`: how long an ack outlives its last move (the inbox's meta TTL). */
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly ttlMs: number,
  ) {
    this.scripts = defineScripts(redis, { ackAdvance: { keys: 1, lua: ADVANCE } });
  }

  async acked(channel: string): Promise<StreamPosition | undefined> {
    const [epoch, offset] = await this.redis.hmget(this.key(channel), 'epoch', 'offset');
    return epoch && offset ? { epoch, offset: Number(offset) } : undefined;
  }

  async advance(channel: string, position: StreamPosition): Promise<StreamPosition | undefined> {
    const held = (await this.scripts.ackAdvance(this.key(channel), position.epoch, position.offset, this.ttlMs)) as [string, number] | [];
    return held.length === 2 ? { epoch: held[0], offset: held[1] } : undefined;
  }

  /** Does not quit the injected client: its creator owns it. */
  async close(): Promise<void> {}

  private key(channel: string): string {
    return `${channelTag(this.prefix, channel)}:acked`;
  }
}
