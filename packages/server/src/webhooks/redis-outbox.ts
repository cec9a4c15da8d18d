import type { RedisClient } from '../redis/connect.js';
import { defineScripts, type ScriptCaller } from '../redis/scripts.js';
import type { AddResult, ClaimedEvent, WebhookEvent, WebhookOutbox } from './outbox.js';

/** KEYS: due zset, events hash. ARGV: id, record, due at, max. Returns 1 added, 0 duplicate, -1 full. */
const ADD = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;

/** KEYS: due zset, events hash. ARGV: now, lease until, max. Leases the due events; returns their records. */
const CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local record = redis.call('HGET', KEYS[2], id)
  if record then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = record
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`;

/** KEYS: due zset, events hash. ARGV: id, record, due at. Reschedules an event still queued. */
const RETRY = `
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
`;

interface StoredRecord {
  event: WebhookEvent;
  attempts: number;
}

/**
 * The outbox in Redis: a sorted set of event ids by the time they are due (a claim moves an id to
 * the end of its lease, so a node that dies lets it come due again) and a hash of the events,
 * `${prefix}{webhooks}:due|events` (one hash slot).
 */
export class RedisOutbox implements WebhookOutbox {
  private readonly due: string;
  private readonly events: string;
  private readonly scripts: Record<'outboxAdd' | 'outboxClaim' | 'outboxRetry', ScriptCaller>;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.due = `${prefix}{webhooks}:due`;
    this.events = `${prefix}{webhooks}:events`;
    this.scripts = defineScripts(redis, {
      outboxAdd: { keys: 2, lua: ADD },
      outboxClaim: { keys: 2, lua: CLAIM },
      outboxRetry: { keys: 2, lua: RETRY },
    });
  }

  async add(event: WebhookEvent, dueAt: number, max: number): Promise<AddResult> {
    const record: StoredRecord = { event, attempts: 0 };
    const result = (await this.scripts.outboxAdd(this.due, this.events, event.id, JSON.stringify(record), dueAt, max)) as number;
    return result === 1 ? 'added' : result === 0 ? 'duplicate' : 'full';
  }

  async claim(now: number, leaseUntil: number, max: number): Promise<ClaimedEvent[]> {
    const records = (await this.scripts.outboxClaim(this.due, this.events, now, leaseUntil, max)) as string[];
    return records.map((r) => JSON.parse(r) as StoredRecord);
  }

  async done(id: string): Promise<void> {
    await this.redis.multi().zrem(this.due, id).hdel(this.events, id).exec();
  }

  async retry(claimed: ClaimedEvent, attempts: number, dueAt: number): Promise<void> {
    const record: StoredRecord = { event: claimed.event, attempts };
    await this.scripts.outboxRetry(this.due, this.events, claimed.event.id, JSON.stringify(record), dueAt);
  }

  async size(): Promise<number> {
    return this.redis.zcard(this.due);
  }
}
