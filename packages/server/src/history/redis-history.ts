import type { RedisClient } from '../redis/connect.js';
import type { StreamPosition } from '@switchboard/protocol';
import { messageHead } from '../broker/codec.js';
import { publicationAt, type Publication, type PublicationInput } from '../publication.js';
import type { AppendPublishStore } from '../publish/publication-path.js';
import { channelTag } from '../redis/keys.js';
import { defineScripts, type ScriptCaller } from '../redis/scripts.js';
import type { AppendOnceResult, History, HistoryPage } from './history.js';
import { uniqueIds } from '../ids.js';
import { isUserChannel, retentionClasses, type InboxRetention, type Retention } from './retention.js';

/** Options of {@link RedisHistory}. */
export interface RedisHistoryOptions {
  /** A command client, owned by the caller (not quit by `close()`); create it with `enableOfflineQueue: false` so commands fail fast while Redis is down. */
  redis: RedisClient;
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
  /** With the inbox on: what `user:` channels keep instead. */
  inbox?: InboxRetention | undefined;
  /** Clock for the history TTL on read, replaceable in tests. @default Date.now */
  now?: () => number;
}

/**
 * Makes sure the channel has an epoch: when the meta hash is missing (first use, expired, or Redis
 * lost data) it starts a fresh epoch at offset 0 and drops any stream left from the old epoch, so
 * a resuming client is told `recovered:false` instead of being handed a gap.
 * `meta`, `stream`: the channel's keys; `fresh` = new epoch, `metaTtl` = ms.
 */
const ENSURE_META = `
local function ensure_meta(meta, stream, fresh, metaTtl)
  local m = redis.call('HMGET', meta, 'epoch', 'offset')
  if m[1] and m[2] then return m[1], tonumber(m[2]), false end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', fresh, 'offset', 0)
  redis.call('PEXPIRE', meta, metaTtl)
  return fresh, 0, true
end
`;

/**
 * Appends a batch — every publication of one event-loop turn, in call order — in one script call.
 * KEYS: per publication its channel's meta, stream and idempotency key. ARGV: fresh epoch, then
 * size, stream TTL ms and meta TTL ms of ordinary channels, then of inboxes, then per publication:
 * its channel's class (`1`: an inbox), idempotency window ms (0: no key), whether to refresh the
 * channel's TTLs (`1`/`0`), ts, frame tail, the number of pub/sub
 * names to PUBLISH to and, when there are any, the cluster payload's head (`messageHead(channel)`,
 * broker/codec.ts), the frame's head, the names.
 * Per publication: check the key, assign the offset, XADD (trimmed to historySize), keep the key,
 * PUBLISH the payload; TTLs are refreshed when asked (or when the channel starts a fresh epoch),
 * once per channel per batch. Returns per publication {0, epoch, offset} or, for a repeated key,
 * {1, 'epoch|offset'}. On a Redis Cluster a batch holds one channel's publications (one hash slot)
 * and publishes with `SPUBLISH` to the channel's own name only.
 */
const appendBatch = (publish: 'PUBLISH' | 'SPUBLISH'): string => `${ENSURE_META}
local fresh = ARGV[1]
local classes = {[0] = {tonumber(ARGV[2]), ARGV[3], ARGV[4]}, [1] = {tonumber(ARGV[5]), ARGV[6], ARGV[7]}}
local out, touched, a = {}, {}, 8
for i = 1, #KEYS, 3 do
  local meta, stream, idem = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local keep = classes[tonumber(ARGV[a])]
  local size, streamTtl, metaTtl = keep[1], keep[2], keep[3]
  local window, refresh, ts, tail, names = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5])
  a = a + 6
  local seen = false
  if window > 0 then seen = redis.call('GET', idem) end
  if seen then
    out[#out + 1] = {1, seen}
  else
    local epoch, _, created = ensure_meta(meta, stream, fresh, metaTtl)
    local offset = redis.call('HINCRBY', meta, 'offset', 1)
    local off = string.format('%d', offset)
    if size > 0 then redis.call('XADD', stream, 'MAXLEN', size, off .. '-0', 't', ts, 'f', tail) end
    if (refresh == '1' or created) and not touched[meta] then
      touched[meta] = true
      if size > 0 then redis.call('PEXPIRE', stream, streamTtl) end
      redis.call('PEXPIRE', meta, metaTtl)
    end
    if window > 0 then redis.call('SET', idem, epoch .. '|' .. off, 'PX', window) end
    if names > 0 then
      local payload = ARGV[a] .. off .. '|' .. epoch .. '|' .. ARGV[a + 1] .. epoch .. '","offset":' .. off .. tail
      for j = a + 2, a + 1 + names do redis.call('${publish}', ARGV[j], payload) end
    end
    out[#out + 1] = {0, epoch, offset}
  end
  if names > 0 then a = a + 2 + names end
end
return out
`;

/** KEYS: meta, stream. ARGV: fresh epoch, meta TTL ms. Returns {epoch, offset}. */
const POSITION = `${ENSURE_META}
local epoch, offset = ensure_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return {epoch, offset}
`;

/**
 * KEYS: meta, stream. ARGV: fresh epoch, meta TTL ms, since, limit, cutoff ts.
 * Trims the entries older than the cutoff from the head of the stream (entries are in ts order as
 * far as the publishers' clocks agree, as in the memory history), then reads after `since`.
 * Returns {epoch, offset, firstOffset, entries}.
 */
const READ = `${ENSURE_META}
local epoch, offset = ensure_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
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

/**
 * The `message` frame of a publication around its epoch and offset, for the script to join:
 * `head` ends with `"epoch":"`, `tail` starts after the offset. Byte for byte `messageFrame`'s
 * (same keys, same order, same escaping; a test compares them), without serialising it whole.
 */
function frameHead(channel: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"epoch":"`;
}

function frameTail(input: PublicationInput): string {
  const rest = JSON.stringify({ from: input.from, topic: input.topic, data: input.data, ts: input.ts, receipt: input.receipt });
  return `,${rest.slice(1)}`;
}

/** Publications appended per script call at most (a turn with more takes several calls). */
const MAX_BATCH = 500;

/** Longest time between two TTL refreshes of a channel this node publishes into. */
const MAX_REFRESH_EVERY_MS = 10_000;

/** One append waiting for its turn's script call. */
interface Pending {
  channel: string;
  input: PublicationInput;
  key: string | undefined;
  to: readonly string[];
  resolve: (result: AppendOnceResult) => void;
  reject: (err: unknown) => void;
}

/**
 * History in Redis: one stream per channel (entry id `<offset>-0`), a meta hash {epoch, offset},
 * and one Lua script call per event-loop turn for every append of the turn: it checks each
 * idempotency key, assigns the offsets, stores, trims to `historySize` and refreshes TTLs (once per
 * channel per period of at most 10 s, not per append). A
 * publication alone in its turn goes out at once (the batch is sent in the same turn, after I/O).
 * As an {@link AppendPublishStore} the same script also publishes the cluster payload
 * (`AtomicAppendPublish`, with the Redis broker).
 * Keys: `${prefix}{ch:<channel>}:meta|stream|idem:<key>` (one hash slot per channel).
 * When Redis loses a channel's keys its epoch changes, so resuming clients get `recovered:false`.
 */
export class RedisHistory implements History, AppendPublishStore {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly classes: { plain: Retention; inbox: Retention };
  private readonly windowMs: number;
  private readonly now: () => number;
  /** A Redis Cluster: one script call per channel (a call's keys must share a slot). */
  private readonly cluster: boolean;
  private readonly scripts: Record<'historyAppendBatch' | 'historyPosition' | 'historyRead', ScriptCaller>;
  /** Appends of this turn, sent together once the turn's I/O is done. */
  private pending: Pending[] = [];
  /** On a cluster: channels with a script call in flight, and their appends that wait for it. */
  private readonly waiting = new Map<string, Pending[]>();
  /**
   * How often a channel's TTLs are refreshed while this node publishes into it; each TTL is set
   * that much longer than configured, so no entry goes before its time between two refreshes.
   */
  private readonly refreshEveryMs: number;
  /** Channels whose TTLs were refreshed in the current period (cleared each period: bounded). */
  private refreshed = new Set<string>();
  private periodStart = Date.now();
  private closed = false;

  constructor(options: RedisHistoryOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? 'sb:';
    this.classes = retentionClasses({
      historySize: options.historySize ?? 200,
      historyTtlMs: options.historyTtlMs ?? 300_000,
      historyMetaTtlMs: options.historyMetaTtlMs ?? 86_400_000,
      inbox: options.inbox,
    });
    this.windowMs = options.idempotencyWindowMs ?? 300_000;
    const shortest = Math.min(this.classes.plain.ttlMs, this.classes.inbox.ttlMs);
    this.refreshEveryMs = Math.max(1, Math.min(MAX_REFRESH_EVERY_MS, Math.floor(shortest / 10)));
    this.now = options.now ?? Date.now;
    this.cluster = this.redis.isCluster;
    this.scripts = defineScripts(this.redis, {
      // On a cluster, auto-pipelining puts the calls of one turn for one shard in one write.
      historyAppendBatch: this.cluster ? { keys: 0, lua: appendBatch('SPUBLISH') } : { keys: 0, lua: appendBatch('PUBLISH'), direct: true },
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
    const keep = this.keep(channel);
    const [epoch, offset] = (await this.scripts.historyPosition(`${tag}:meta`, `${tag}:stream`, freshEpoch(), keep.metaTtlMs)) as [
      string,
      number,
    ];
    return { epoch, offset };
  }

  async read(channel: string, since: number, limit: number): Promise<HistoryPage> {
    const tag = channelTag(this.prefix, channel);
    const from = Math.max(0, Math.min(Math.floor(since), Number.MAX_SAFE_INTEGER - 1));
    const count = Math.max(0, Math.min(Math.floor(limit), 1_000_000));
    const keep = this.keep(channel);
    const cutoff = this.now() - keep.ttlMs;
    const [epoch, offset, firstOffset, entries] = (await this.scripts.historyRead(
      `${tag}:meta`,
      `${tag}:stream`,
      freshEpoch(),
      keep.metaTtlMs,
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

  private keep(channel: string): Retention {
    return isUserChannel(channel) ? this.classes.inbox : this.classes.plain;
  }

  private run(channel: string, input: PublicationInput, key: string | undefined, to: readonly string[]): Promise<AppendOnceResult> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(this.flush);
      this.pending.push({ channel, input, key, to, resolve, reject });
    });
  }

  /** Sends the turn's appends: one script call per {@link MAX_BATCH} (on a cluster, see {@link sendInOrder}). */
  private readonly flush = (): void => {
    const all = this.pending;
    this.pending = [];
    if (this.cluster) {
      for (const batch of byChannel(all)) this.sendInOrder(batch[0]!.channel, batch);
      return;
    }
    for (let i = 0; i < all.length; i += MAX_BATCH) void this.send(all.slice(i, i + MAX_BATCH));
  };

  /**
   * On a cluster, one script call per channel at a time; what comes meanwhile waits for it and goes
   * in the next call. The calls of one node are not kept in order there: a master that lacks the
   * script (new, restarted, or a replica that took over) answers NOSCRIPT, ioredis sends it again
   * with its source, and a later call may pass it. Offsets would then not follow the call order.
   */
  private sendInOrder(channel: string, batch: Pending[]): void {
    const waiting = this.waiting.get(channel);
    if (waiting) {
      waiting.push(...batch);
      return;
    }
    this.waiting.set(channel, []);
    void (async () => {
      for (let next = batch; next.length > 0;) {
        for (let i = 0; i < next.length; i += MAX_BATCH) await this.send(next.slice(i, i + MAX_BATCH));
        next = this.waiting.get(channel)!;
        this.waiting.set(channel, []);
      }
      this.waiting.delete(channel);
    })();
  }

  private async send(batch: Pending[]): Promise<void> {
    const keys: string[] = [];
    const margin = this.refreshEveryMs;
    const { plain, inbox } = this.classes;
    const args: (string | number)[] = [
      freshEpoch(),
      plain.size,
      plain.ttlMs + margin,
      plain.metaTtlMs + margin,
      inbox.size,
      inbox.ttlMs + margin,
      inbox.metaTtlMs + margin,
    ];
    const now = Date.now();
    if (now - this.periodStart >= this.refreshEveryMs) {
      this.refreshed = new Set();
      this.periodStart = now;
    }
    for (const { channel, input, key, to } of batch) {
      const tag = channelTag(this.prefix, channel);
      keys.push(`${tag}:meta`, `${tag}:stream`, `${tag}:idem:${key ?? ''}`);
      const refresh = this.refreshed.has(channel) ? 0 : 1;
      if (refresh) this.refreshed.add(channel);
      args.push(isUserChannel(channel) ? 1 : 0, key === undefined ? 0 : this.windowMs, refresh, input.ts, frameTail(input), to.length);
      if (to.length > 0) args.push(messageHead(channel), frameHead(channel), ...to);
    }
    let replies: ([0, string, number] | [1, string])[];
    try {
      replies = (await this.scripts.historyAppendBatch.withKeys(keys, args)) as typeof replies;
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const reply = replies[i]!;
      if (reply[0] === 1) {
        const seen = reply[1];
        const bar = seen.lastIndexOf('|');
        p.resolve({ duplicate: true, position: { epoch: seen.slice(0, bar), offset: Number(seen.slice(bar + 1)) } });
      } else {
        p.resolve({ duplicate: false, pub: publicationAt(p.channel, reply[1], reply[2], p.input) });
      }
    });
  }
}

/** The appends of a turn by channel, each channel's in call order. */
function byChannel(all: Pending[]): Pending[][] {
  const groups = new Map<string, Pending[]>();
  for (const p of all) {
    const group = groups.get(p.channel);
    if (group) group.push(p);
    else groups.set(p.channel, [p]);
  }
  return [...groups.values()];
}

/**
 * A new epoch: base64url (so it never contains the wire format's `|`). Only used when a channel has
 * no meta yet, but passed on every call, so it comes without random bytes per publication.
 */
const freshEpoch = uniqueIds();

/** A stream entry (`<offset>-0`, fields `t` ts and `f` the frame's tail after the offset) as a Publication. */
function entryToPublication(channel: string, epoch: string, id: string, fields: string[]): Publication {
  const value = (name: string): string => {
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
    throw new Error(`history entry ${id} of ${channel} has no field ${name}`);
  };
  // The tail is `,"from":…,"topic":…,"data":…,"ts":…}`: with `{` for its comma it is the rest of the frame as JSON.
  const rest = JSON.parse('{' + value('f').slice(1)) as PublicationInput;
  rest.ts = Number(value('t'));
  return publicationAt(channel, epoch, Number(id.slice(0, id.indexOf('-'))), rest);
}
