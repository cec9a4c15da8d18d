import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StreamPosition } from '@switchboard/protocol';
import { messageHead } from '../broker/codec.js';
import { messageFrame, type Publication, type PublicationInput } from '../publication.js';
import type { AppendPublishStore } from '../publish/publication-path.js';
import { channelTag } from '../redis/keys.js';
import { defineScripts, type ScriptCaller } from '../redis/scripts.js';
import type { AppendOnceResult, History, HistoryPage } from './history.js';

/** Options of {@link RedisHistory}. */
export interface RedisHistoryOptions {
  /** A command client, owned by the caller (not quit by `close()`); create it with `enableOfflineQueue: false` so commands fail fast while Redis is down. */
  redis: Redis;
  /** Prefix of every key. @default 'sb:' */
  prefix?: string;
  /** Publications kept per channel (the stream's exact MAXLEN). @default 200 */
  historySize?: number;
  /** Age after which a publication is dropped (by its `ts`, on read), and the stream's idle TTL. @default 300_000 */
  historyTtlMs?: number;
  /** A channel with no publication for this long forgets its epoch and offset. @default 86_400_000 */
  historyMetaTtlMs?: number;
  /** How long an idempotency key is remembered. @default 300_000 */
  idempotencyWindowMs?: number;
  /** Clock for the history TTL on read, replaceable in tests. @default Date.now */
  now?: () => number;
}

/**
 * Makes sure the channel has an epoch: when the meta hash is missing (first use, expired, or Redis
 * lost data) it starts a fresh epoch at offset 0 and drops any stream left from the old epoch, so
 * a resuming client is told `recovered:false` instead of being handed a gap.
 * Expects KEYS[1] = meta, KEYS[2] = stream, `fresh` = new epoch, `metaTtl` = ms.
 */
const ENSURE_META = `
local function ensure_meta(fresh, metaTtl)
  local m = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
  if m[1] and m[2] then return m[1], tonumber(m[2]) end
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', fresh, 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], metaTtl)
  return fresh, 0
end
`;

/**
 * KEYS: meta, stream, idempotency key. ARGV: fresh epoch, historySize, stream TTL ms, meta TTL ms,
 * idempotency window ms (0: no key), ts, frame tail, then, to publish as well: the cluster
 * payload's head (`messageHead(channel)`, see broker/codec.ts), the frame's head and mid, and the
 * pub/sub names to PUBLISH to (ARGV[11] on). Returns {0, epoch, offset} or, for a repeated key,
 * {1, 'epoch|offset'}.
 */
const APPEND = `${ENSURE_META}
local window = tonumber(ARGV[5])
if window > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {1, seen} end
end
local epoch = ensure_meta(ARGV[1], ARGV[4])
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local off = string.format('%d', offset)
local size = tonumber(ARGV[2])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, off .. '-0', 't', ARGV[6], 'f', ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if window > 0 then redis.call('SET', KEYS[3], epoch .. '|' .. off, 'PX', window) end
if #ARGV > 10 then
  local payload = ARGV[8] .. off .. '|' .. epoch .. '|' .. ARGV[9] .. epoch .. ARGV[10] .. off .. ARGV[7]
  for i = 11, #ARGV do redis.call('PUBLISH', ARGV[i], payload) end
end
return {0, epoch, offset}
`;

/** KEYS: meta, stream. ARGV: fresh epoch, meta TTL ms. Returns {epoch, offset}. */
const POSITION = `${ENSURE_META}
local epoch, offset = ensure_meta(ARGV[1], ARGV[2])
return {epoch, offset}
`;

/**
 * KEYS: meta, stream. ARGV: fresh epoch, meta TTL ms, since, limit, cutoff ts.
 * Trims the entries older than the cutoff from the head of the stream (entries are in ts order as
 * far as the publishers' clocks agree, as in the memory history), then reads after `since`.
 * Returns {epoch, offset, firstOffset, entries}.
 */
const READ = `${ENSURE_META}
local epoch, offset = ensure_meta(ARGV[1], ARGV[2])
local since, limit, cutoff = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local first = offset + 1
local start, count = '-', 1
while true do
  -- The head is usually live: look at one entry first, then scan the expired run in batches.
  local batch = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', count)
  count = 100
  if #batch == 0 then
    if start ~= '-' then redis.call('DEL', KEYS[2]) end
    break
  end
  local live = nil
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) >= cutoff then live = entry[1]; break end
  end
  if live then
    first = tonumber(string.match(live, '^(%d+)'))
    if start ~= '-' or live ~= batch[1][1] then redis.call('XTRIM', KEYS[2], 'MINID', live) end
    break
  end
  start = '(' .. batch[#batch][1]
end
local entries = {}
local from = math.max(since + 1, first)
if limit > 0 and from <= offset then
  entries = redis.call('XRANGE', KEYS[2], string.format('%d', from) .. '-0', '+', 'COUNT', limit)
end
return {epoch, offset, first, entries}
`;

/** The `message` frame of `pub` split around its epoch and offset, for the script to join. */
function frameParts(channel: string, input: PublicationInput): { head: string; mid: string; tail: string } {
  // Built by messageFrame itself, so the script's frame is the node's byte for byte. `"epoch":""`
  // cannot occur earlier: a `"` inside the JSON string of the channel is always escaped.
  const skeleton = messageFrame({ channel, epoch: '', offset: 0, ...input });
  const marker = '"epoch":"","offset":0';
  const at = skeleton.indexOf(marker);
  if (at < 0) throw new Error('message frame has no "epoch","offset" pair');
  return { head: skeleton.slice(0, at) + '"epoch":"', mid: '","offset":', tail: skeleton.slice(at + marker.length) };
}

/**
 * History in Redis: one stream per channel (entry id `<offset>-0`), a meta hash {epoch, offset},
 * and one Lua script per append that checks the idempotency key, assigns the offset, stores, trims
 * to `historySize` and refreshes TTLs, in one round trip. As an {@link AppendPublishStore} the same
 * script also publishes the cluster payload (`AtomicAppendPublish`, with the Redis broker).
 * Keys: `${prefix}{ch:<channel>}:meta|stream|idem:<key>` (one hash slot per channel).
 * When Redis loses a channel's keys its epoch changes, so resuming clients get `recovered:false`.
 */
export class RedisHistory implements History, AppendPublishStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly historySize: number;
  private readonly historyTtlMs: number;
  private readonly metaTtlMs: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly scripts: Record<'historyAppend' | 'historyPosition' | 'historyRead', ScriptCaller>;
  private closed = false;

  constructor(options: RedisHistoryOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? 'sb:';
    this.historySize = options.historySize ?? 200;
    this.historyTtlMs = options.historyTtlMs ?? 300_000;
    // The meta hash must outlive the stream, or kept entries would be dropped with a new epoch.
    this.metaTtlMs = Math.max(options.historyMetaTtlMs ?? 86_400_000, this.historyTtlMs);
    this.windowMs = options.idempotencyWindowMs ?? 300_000;
    this.now = options.now ?? Date.now;
    this.scripts = defineScripts(this.redis, {
      historyAppend: { keys: 3, lua: APPEND },
      historyPosition: { keys: 2, lua: POSITION },
      historyRead: { keys: 2, lua: READ },
    });
  }

  get ready(): boolean {
    return !this.closed && this.redis.status === 'ready';
  }

  async append(channel: string, input: PublicationInput): Promise<Publication> {
    const result = await this.run(channel, input, undefined, []);
    if (result.duplicate) throw new Error('unexpected duplicate without an idempotency key');
    return result.pub;
  }

  async appendOnce(channel: string, input: PublicationInput, key: string): Promise<AppendOnceResult> {
    return this.run(channel, input, key, []);
  }

  appendAndPublish(channel: string, input: PublicationInput, key: string | undefined, to: readonly string[]): Promise<AppendOnceResult> {
    return this.run(channel, input, key, to);
  }

  async position(channel: string): Promise<StreamPosition> {
    const tag = channelTag(this.prefix, channel);
    const [epoch, offset] = (await this.scripts.historyPosition(`${tag}:meta`, `${tag}:stream`, freshEpoch(), this.metaTtlMs)) as [
      string,
      number,
    ];
    return { epoch, offset };
  }

  async read(channel: string, since: number, limit: number): Promise<HistoryPage> {
    const tag = channelTag(this.prefix, channel);
    const from = Math.max(0, Math.min(Math.floor(since), Number.MAX_SAFE_INTEGER - 1));
    const count = Math.max(0, Math.min(Math.floor(limit), 1_000_000));
    const cutoff = this.now() - this.historyTtlMs;
    const [epoch, offset, firstOffset, entries] = (await this.scripts.historyRead(
      `${tag}:meta`,
      `${tag}:stream`,
      freshEpoch(),
      this.metaTtlMs,
      from,
      count,
      cutoff,
    )) as [string, number, number, [string, string[]][]];
    const publications = entries.map(([id, fields]) => entryToPublication(channel, epoch, id, fields));
    return { epoch, offset, firstOffset, publications };
  }

  /** Does not quit the injected client: its creator owns it. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private async run(channel: string, input: PublicationInput, key: string | undefined, to: readonly string[]): Promise<AppendOnceResult> {
    const tag = channelTag(this.prefix, channel);
    const { head, mid, tail } = frameParts(channel, input);
    const publish = to.length > 0 ? [messageHead(channel), head, mid, ...to] : [];
    const reply = (await this.scripts.historyAppend(
      `${tag}:meta`,
      `${tag}:stream`,
      `${tag}:idem:${key ?? ''}`,
      freshEpoch(),
      this.historySize,
      this.historyTtlMs,
      this.metaTtlMs,
      key === undefined ? 0 : this.windowMs,
      input.ts,
      tail,
      ...publish,
    )) as [0, string, number] | [1, string];
    if (reply[0] === 1) {
      const seen = reply[1];
      const bar = seen.lastIndexOf('|');
      return { duplicate: true, position: { epoch: seen.slice(0, bar), offset: Number(seen.slice(bar + 1)) } };
    }
    const [, epoch, offset] = reply;
    return { duplicate: false, pub: { channel, epoch, offset, ...input } };
  }
}

/** A new epoch: random, base64url (so it never contains the wire format's `|`). */
function freshEpoch(): string {
  // Only used when a channel has no meta yet, but passed on every call: a random per-process base
  // and a counter keep it unique without drawing random bytes per publication.
  return EPOCH_BASE + (epochCounter++).toString(36);
}

const EPOCH_BASE = randomBytes(6).toString('base64url');
let epochCounter = 0;

/** A stream entry (`<offset>-0`, fields `t` ts and `f` the frame's tail after the offset) as a Publication. */
function entryToPublication(channel: string, epoch: string, id: string, fields: string[]): Publication {
  const value = (name: string): string => {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
    throw new Error(`history entry ${id} of ${channel} has no field ${name}`);
  };
  // The tail is `,"from":…,"topic":…,"data":…,"ts":…}`: with `{` for its comma it is the rest of the frame as JSON.
  const rest = JSON.parse('{' + value('f').slice(1)) as { from: string | null; topic: string; data: unknown };
  return {
    channel,
    epoch,
    offset: Number(id.slice(0, id.indexOf('-'))),
    from: rest.from,
    topic: rest.topic,
    data: rest.data,
    ts: Number(value('t')),
  };
}
