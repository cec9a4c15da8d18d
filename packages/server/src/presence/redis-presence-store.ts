import type { RedisClient } from '../redis/connect.js';
import { userChannel, type PresenceUser } from '@switchboard/protocol';
import { channelTag } from '../redis/keys.js';
import { defineScripts, execPipeline as exec, slotPipeline, type ScriptCaller } from '../redis/scripts.js';
import type { PresenceEntry, PresenceLeave, PresenceMember, PresenceStore, UserSession } from './presence-store.js';

/** Options of {@link RedisPresenceStore}. */
export interface RedisPresenceStoreOptions {
  /** A command client, owned by the caller (not quit by `close()`); create it with `enableOfflineQueue: false` so commands fail fast while Redis is down. */
  redis: RedisClient;
  /** Prefix of every key. @default 'sb:' */
  prefix?: string;
  /** Lease of a session entry: it expires unless `refresh`ed within this time. @default 15_000 */
  presenceTtlMs?: number;
  /** Clock for leases, replaceable in tests. All nodes should agree on it within a fraction of the lease. @default Date.now */
  now?: () => number;
}

/**
 * Shared Lua helpers. Per channel: KEYS[1] = users ZSET (user → latest session expiry); per user
 * `<tag>:u:<user>` ZSET (session → expiry) and `<tag>:s:<user>` HASH (session → `since|node`).
 * `drop_dead` removes a user's sessions whose lease ended at or before `now`; `rescore` sets the
 * user's score to their latest session expiry, or removes the user (and their keys) when they have
 * none left, answering 1 then.
 */
const HELPERS = `
local function drop_dead(ukey, skey, now)
  local dead = redis.call('ZRANGEBYSCORE', ukey, '-inf', now)
  for _, s in ipairs(dead) do redis.call('HDEL', skey, s) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', ukey, '-inf', now) end
end
local function rescore(users, ukey, skey, user)
  local top = redis.call('ZRANGE', ukey, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', ukey, skey)
    return redis.call('ZREM', users, user)
  end
  redis.call('ZADD', users, top[2], user)
  return 0
end
local function reap_channel(users, base, now, gone)
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', users, '-inf', now)) do
    local ukey, skey = base .. 'u:' .. user, base .. 's:' .. user
    drop_dead(ukey, skey, now)
    if rescore(users, ukey, skey, user) == 1 then gone[#gone + 1] = user end
  end
  return redis.call('ZRANGE', users, 0, 0, 'WITHSCORES')[2] or ''
end
local function keep(ttl, ...)
  for _, k in ipairs({...}) do redis.call('PEXPIRE', k, ttl) end
end
`;

/**
 * KEYS: users, ukey, skey. ARGV: now, expiry, session, `since|node`, user, key TTL.
 * Returns 1 when the user was not present (a join). A user whose sessions all expired but who was
 * not reaped yet is still present: they never left as far as subscribers know, so no join either.
 */
const ADD = `${HELPERS}
drop_dead(KEYS[2], KEYS[3], ARGV[1])
local present = redis.call('ZSCORE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
rescore(KEYS[1], KEYS[2], KEYS[3], ARGV[5])
keep(ARGV[6], KEYS[1], KEYS[2], KEYS[3])
if present then return 0 end
return 1
`;

/**
 * KEYS: users, ukey, skey. ARGV: now, session, user.
 * Returns {1 when this removed the user (a leave), the user's new score or ''}.
 */
const REMOVE = `${HELPERS}
drop_dead(KEYS[2], KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
local left = rescore(KEYS[1], KEYS[2], KEYS[3], ARGV[3])
return {left, redis.call('ZSCORE', KEYS[1], ARGV[3]) or ''}
`;

/**
 * Renews one stored session of `user` in the channel of `users`/`base`: 1, or 0 when it is no
 * longer stored. Two calls per session: `ZADD XX CH` renews only a stored session and says whether
 * it was, since an expiry only grows — but within the millisecond of the last add or renewal it
 * is the same, so an answer of 0 is checked with `ZSCORE`. The keys' safety TTLs are set
 * only when `ttl` is not '0' (a node does that every quarter of the TTL, not on every renewal).
 */
const RENEW = `
local function renew(users, base, expiry, ttl, session, user)
  local ukey = base .. 'u:' .. user
  if redis.call('ZADD', ukey, 'XX', 'CH', expiry, session) == 0 and not redis.call('ZSCORE', ukey, session) then return 0 end
  redis.call('ZADD', users, 'GT', expiry, user)
  if ttl ~= '0' then
    redis.call('PEXPIRE', ukey, ttl)
    redis.call('PEXPIRE', base .. 's:' .. user, ttl)
  end
  return 1
end
`;

/**
 * KEYS: users. ARGV: expiry, key TTL (or 0), `<tag>:`, then a session and its user per entry (the per-user
 * keys are built here, under the channel's hash tag). Renews each stored session (even one past its
 * lease but not reaped: nobody was told it left); returns 1 per entry renewed, 0 per entry no longer
 * stored. One call for all of a node's sessions in a channel, not one each (on a Redis Cluster,
 * where a call keeps to one slot).
 */
const REFRESH = `${RENEW}
local expiry, ttl, base = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 2 do out[#out + 1] = renew(KEYS[1], base, expiry, ttl, ARGV[i], ARGV[i + 1]) end
if ttl ~= '0' then redis.call('PEXPIRE', KEYS[1], ttl) end
return out
`;

/**
 * On one Redis, a slice of renewals over many channels in one call. KEYS: the presence-channels
 * ZSET, then each channel's users ZSET. ARGV: expiry, key TTL (or 0), then per channel its name, `<tag>:`,
 * the number of its entries and a session and its user per entry. Returns 1 or 0 per entry, in
 * order. With the TTLs it also lists each channel for reaping where it is missing (`add` lists it,
 * and a renewal only moves a lease later, so the channel's reap time stays a lower bound; this is
 * the guard against an entry that went missing anyway).
 */
const REFRESH_MANY = `${RENEW}
local expiry, ttl = ARGV[1], ARGV[2]
local out, a = {}, 3
for k = 2, #KEYS do
  local channel, base, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  for _ = 1, n do
    out[#out + 1] = renew(KEYS[k], base, expiry, ttl, ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  if ttl ~= '0' then
    redis.call('PEXPIRE', KEYS[k], ttl)
    redis.call('ZADD', KEYS[1], 'LT', expiry, channel)
  end
end
return out
`;

/**
 * KEYS: users. ARGV: now, `<tag>:` (per-user keys are built here: they share the channel's hash
 * tag, so the same slot). Removes expired sessions of the users whose latest lease ended; returns
 * {users who have no session left (removed from the channel, one script so exactly once), the
 * channel's lowest remaining user score or ''}.
 */
const REAP = `${HELPERS}
local gone = {}
local first = reap_channel(KEYS[1], ARGV[2], ARGV[1], gone)
return {gone, first}
`;

/**
 * On one Redis, a round of reaping in one call. KEYS: the presence-channels ZSET. ARGV: now, the
 * key prefix, the most channels to look at. Reaps each due channel as REAP does, then moves its
 * reap time to its lowest remaining user score or forgets it (atomic here: no add can come in
 * between). Returns {channels looked at, {channel, user, …} for each user gone}.
 */
const REAP_MANY = `${HELPERS}
local now, prefix = ARGV[1], ARGV[2]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, channel in ipairs(due) do
  -- channelTag() of redis/keys.ts, and ':'
  local base = prefix .. '{ch:' .. channel .. '}:'
  local gone = {}
  local first = reap_channel(base .. 'users', base, now, gone)
  for _, user in ipairs(gone) do out[#out + 1] = channel; out[#out + 1] = user end
  if first == '' then redis.call('ZREM', KEYS[1], channel) else redis.call('ZADD', KEYS[1], 'XX', 'GT', first, channel) end
end
return {#due, out}
`;

/** KEYS: the cluster's presence-channels ZSET. ARGV: channel, now. Forgets the channel unless re-scored since. */
const FORGET = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`;

/** KEYS: users. ARGV: now, `<tag>:`. Returns {user, {since|node per live session}, …} for users with a live session. */
const LIST = `
local now, base = '(' .. ARGV[1], ARGV[2]
local out = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local live = redis.call('ZRANGEBYSCORE', base .. 'u:' .. user, now, '+inf')
  if #live > 0 then
    out[#out + 1] = user
    out[#out + 1] = redis.call('HMGET', base .. 's:' .. user, unpack(live))
  end
end
return out
`;

/** KEYS: ukey, skey. ARGV: now. Returns {session, since|node, …} for live sessions. */
const SESSIONS = `
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #live == 0 then return {} end
local values = redis.call('HMGET', KEYS[2], unpack(live))
local out = {}
for i, s in ipairs(live) do
  if values[i] then out[#out + 1] = s; out[#out + 1] = values[i] end
end
return out
`;

const SCRIPTS = {
  presenceAdd: { keys: 3, lua: ADD },
  presenceRemove: { keys: 3, lua: REMOVE },
  presenceRefresh: { keys: 1, lua: REFRESH },
  presenceRefreshMany: { keys: 0, lua: REFRESH_MANY },
  presenceReap: { keys: 1, lua: REAP },
  presenceReapMany: { keys: 1, lua: REAP_MANY },
  presenceForget: { keys: 1, lua: FORGET },
  presenceList: { keys: 1, lua: LIST },
  presenceSessions: { keys: 2, lua: SESSIONS },
};

/** Channels looked at per reap round trip. */
const REAP_BATCH = 200;
/** Presence entries renewed per Redis round trip. */
const REFRESH_SLICE = 250;

/**
 * Presence in Redis with leases. Every session entry expires `presenceTtlMs` after it was added or
 * last `refresh`ed, so the entries of a crashed node go away; `reap` removes them and tells which
 * users left, exactly once cluster-wide. Join/leave decisions are Lua scripts, atomic per channel:
 * joins and leaves of a user alternate strictly, whichever nodes add, remove or reap.
 *
 * Keys (one hash slot per channel): `${prefix}{ch:<channel>}:users` ZSET user → latest lease end,
 * `…:u:<user>` ZSET session → lease end, `…:s:<user>` HASH session → `since|node`; and
 * `${prefix}{cluster}:presence-channels` ZSET channel → a lower bound of its earliest user lease
 * end, which tells `reap` where to look without KEYS. Every per-channel key also gets a safety TTL
 * (10 leases, at least 10 minutes) so that nothing outlives a cluster that stopped reaping.
 */
export class RedisPresenceStore implements PresenceStore {
  private readonly redis: RedisClient;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly keyTtlMs: number;
  private readonly now: () => number;
  private readonly channelsKey: string;
  /** When this store's last `refresh` that also set the keys' safety TTLs succeeded. */
  private keptAt = -Infinity;
  private readonly scripts: Record<keyof typeof SCRIPTS, ScriptCaller>;
  private closed = false;

  constructor(options: RedisPresenceStoreOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix ?? 'sb:';
    this.ttlMs = options.presenceTtlMs ?? 15_000;
    this.keyTtlMs = Math.max(10 * this.ttlMs, 600_000);
    this.now = options.now ?? Date.now;
    this.channelsKey = `${this.prefix}{cluster}:presence-channels`;
    this.scripts = defineScripts(this.redis, SCRIPTS);
  }

  get ready(): boolean {
    return !this.closed && this.redis.status === 'ready';
  }

  async add(channel: string, member: PresenceMember): Promise<boolean> {
    const now = this.now();
    const expiry = now + this.ttlMs;
    const p = slotPipeline(this.redis);
    this.scripts.presenceAdd.queue(
      p,
      ...this.userKeys(channel, member.user),
      now,
      expiry,
      member.session,
      `${member.since}|${member.node}`,
      member.user,
      this.keyTtlMs,
    );
    // LT also adds a missing channel; a lower bound is all reap needs.
    p.zadd(this.channelsKey, 'LT', expiry, channel);
    const [joined] = await exec(p);
    return joined === 1;
  }

  async remove(channel: string, member: PresenceMember): Promise<boolean> {
    const [left, score] = (await this.scripts.presenceRemove(
      ...this.userKeys(channel, member.user),
      this.now(),
      member.session,
      member.user,
    )) as [number, string];
    // The user's latest lease may now be an earlier one (a session on a dead node): let reap know.
    if (score !== '') await this.redis.zadd(this.channelsKey, 'LT', score, channel);
    return left === 1;
  }

  /**
   * Renews `entries` in slices of {@link REFRESH_SLICE}, one after the other: Redis runs each
   * slice as one burst, so a node with tens of thousands of sessions never holds it (and the
   * publications queued behind on the same connection) for more than a slice's worth. On one Redis
   * a slice is one script call; on a Redis Cluster, one call per channel of the slice.
   */
  async refresh(entries: PresenceEntry[]): Promise<PresenceEntry[]> {
    const lost: PresenceEntry[] = [];
    const now = this.now();
    const expiry = now + this.ttlMs;
    // The safety TTLs every quarter of their length: a key added since got its TTL from `add`.
    const keyTtl = now - this.keptAt >= this.keyTtlMs / 4 ? this.keyTtlMs : 0;
    for (let from = 0; from < entries.length; from += REFRESH_SLICE) {
      const slice = entries.slice(from, from + REFRESH_SLICE);
      const byChannel = new Map<string, PresenceEntry[]>();
      for (const entry of slice) {
        const same = byChannel.get(entry.channel);
        if (same) same.push(entry);
        else byChannel.set(entry.channel, [entry]);
      }
      const renewed = this.redis.isCluster
        ? await this.refreshEach(byChannel, expiry, keyTtl)
        : await this.refreshMany(byChannel, expiry, keyTtl);
      for (const entry of slice) if (!renewed.has(entry)) lost.push(entry);
    }
    if (keyTtl > 0) this.keptAt = now;
    return lost;
  }

  /** One Redis: the slice in one script call. */
  private async refreshMany(byChannel: Map<string, PresenceEntry[]>, expiry: number, keyTtl: number): Promise<Set<PresenceEntry>> {
    const keys = [this.channelsKey];
    const args: (string | number)[] = [expiry, keyTtl];
    for (const [channel, same] of byChannel) {
      const tag = channelTag(this.prefix, channel);
      keys.push(`${tag}:users`);
      args.push(channel, `${tag}:`, same.length);
      for (const { member } of same) args.push(member.session, member.user);
    }
    const results = (await this.scripts.presenceRefreshMany.withKeys(keys, args)) as number[];
    const renewed = new Set<PresenceEntry>();
    let i = 0;
    for (const same of byChannel.values()) for (const entry of same) if (results[i++] === 1) renewed.add(entry);
    return renewed;
  }

  /** A Redis Cluster: one call per channel (a call keeps to one slot), sent together. */
  private async refreshEach(byChannel: Map<string, PresenceEntry[]>, expiry: number, keyTtl: number): Promise<Set<PresenceEntry>> {
    const p = slotPipeline(this.redis);
    for (const [channel, same] of byChannel) {
      const tag = channelTag(this.prefix, channel);
      const args = same.flatMap(({ member }) => [member.session, member.user]);
      this.scripts.presenceRefresh.queue(p, `${tag}:users`, expiry, keyTtl, `${tag}:`, ...args);
    }
    if (keyTtl > 0) for (const channel of byChannel.keys()) p.zadd(this.channelsKey, 'LT', expiry, channel);
    const results = (await exec(p)) as number[][];
    const renewed = new Set<PresenceEntry>();
    [...byChannel.values()].forEach((same, i) => same.forEach((entry, j) => results[i]![j] === 1 && renewed.add(entry)));
    return renewed;
  }

  /**
   * Rounds of {@link REAP_BATCH} due channels until none is due. Each round moves every channel it
   * looked at past `now` (or forgets it), so this ends; the bound on rounds is a guard. On one Redis
   * a round is one script call; on a Redis Cluster, one call per channel and then their rescoring.
   */
  async reap(now: number = this.now()): Promise<PresenceLeave[]> {
    const leaves: PresenceLeave[] = [];
    for (let round = 0; round < 50; round++) {
      const looked = this.redis.isCluster ? await this.reapEach(now, leaves) : await this.reapMany(now, leaves);
      if (looked < REAP_BATCH) break;
    }
    return leaves;
  }

  private async reapMany(now: number, leaves: PresenceLeave[]): Promise<number> {
    const [looked, flat] = (await this.scripts.presenceReapMany(this.channelsKey, now, this.prefix, REAP_BATCH)) as [number, string[]];
    for (let i = 0; i + 1 < flat.length; i += 2) leaves.push({ channel: flat[i]!, user: flat[i + 1]! });
    return looked;
  }

  private async reapEach(now: number, leaves: PresenceLeave[]): Promise<number> {
    const due = await this.redis.zrangebyscore(this.channelsKey, '-inf', now, 'LIMIT', 0, REAP_BATCH);
    if (due.length === 0) return 0;
    const p = slotPipeline(this.redis);
    for (const channel of due) {
      const tag = channelTag(this.prefix, channel);
      this.scripts.presenceReap.queue(p, `${tag}:users`, now, `${tag}:`);
    }
    const results = (await exec(p)) as [string[], string][];
    const after = slotPipeline(this.redis);
    due.forEach((channel, i) => {
      const [gone, first] = results[i]!;
      for (const user of gone) leaves.push({ channel, user });
      if (first === '') this.scripts.presenceForget.queue(after, this.channelsKey, channel, now);
      else after.zadd(this.channelsKey, 'XX', 'GT', first, channel);
    });
    await exec(after);
    return due.length;
  }

  async list(channel: string): Promise<PresenceUser[]> {
    const tag = channelTag(this.prefix, channel);
    const flat = (await this.scripts.presenceList(`${tag}:users`, this.now(), `${tag}:`)) as (string | (string | null)[])[];
    const users: PresenceUser[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const values = (flat[i + 1] as (string | null)[]).filter((v): v is string => v !== null);
      if (values.length === 0) continue;
      users.push({ user: flat[i] as string, sessions: values.length, nodes: [...new Set(values.map((v) => parseValue(v).node))].sort() });
    }
    return users;
  }

  async sessions(user: string): Promise<UserSession[]> {
    const [ukey, skey] = this.userKeys(userChannel(user), user).slice(1);
    const flat = (await this.scripts.presenceSessions(ukey!, skey!, this.now())) as string[];
    const sessions: UserSession[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) sessions.push({ session: flat[i]!, ...parseValue(flat[i + 1]!) });
    return sessions;
  }

  /**
   * Scans the channels with presence for personal ones (`ZSCAN … MATCH user:*`, a few hundred per
   * round trip, so the cost grows with what is asked, not with the cluster) and keeps the users
   * whose own channel still holds them with a live lease (the scan's set forgets an emptied
   * channel only when reaping).
   */
  async online(limit: number): Promise<{ users: string[]; more: boolean }> {
    const users = new Set<string>();
    const now = this.now();
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.zscan(this.channelsKey, cursor, 'MATCH', 'user:*', 'COUNT', 500);
      cursor = next;
      const candidates: string[] = [];
      for (let i = 0; i < flat.length; i += 2) candidates.push(flat[i]!.slice('user:'.length));
      const scores = await Promise.all(candidates.map((user) => this.redis.zscore(this.userKeys(userChannel(user), user)[0], user)));
      for (let i = 0; i < candidates.length; i++) {
        // ZSCAN may return an entry twice.
        if (scores[i] === null || Number(scores[i]) <= now || users.has(candidates[i]!)) continue;
        if (users.size === limit) return { users: [...users], more: true };
        users.add(candidates[i]!);
      }
    } while (cursor !== '0');
    return { users: [...users], more: false };
  }

  /** Does not quit the injected client: its creator owns it. */
  async close(): Promise<void> {
    this.closed = true;
  }

  /** users, ukey, skey of `user` in `channel`. */
  private userKeys(channel: string, user: string): [string, string, string] {
    const tag = channelTag(this.prefix, channel);
    return [`${tag}:users`, `${tag}:u:${user}`, `${tag}:s:${user}`];
  }
}

/** `since|node` (node last: the interface does not restrict its characters). */
function parseValue(value: string): { node: string; since: number } {
  const bar = value.indexOf('|');
  return { since: Number(value.slice(0, bar)), node: value.slice(bar + 1) };
}
