/** How long and how much of one channel's history is kept. */
export interface Retention {
  /** Publications kept. */
  size: number;
  /** Age (by `ts`) after which a publication is dropped. */
  ttlMs: number;
  /** A channel with no publication for this long forgets its epoch and offset; never shorter than `ttlMs`. */
  metaTtlMs: number;
}

/** The inbox's limits (`SWITCHBOARD_INBOX=on`): what a `user:` channel keeps instead of the history's. */
export interface InboxRetention {
  size: number;
  ttlMs: number;
}

/** What every history is built with: the limits of ordinary channels and, with the inbox on, of `user:` channels. */
export interface RetentionLimits {
  historySize: number;
  historyTtlMs: number;
  historyMetaTtlMs: number;
  inbox?: InboxRetention | undefined;
}

/** True for a user's personal channel, the inbox when the inbox is on. */
export function isUserChannel(channel: string): boolean {
  return channel.startsWith('user:');
}

/** The retention of ordinary channels, and of inboxes (the same when the inbox is off). */
export function retentionClasses(limits: RetentionLimits): { plain: Retention; inbox: Retention } {
  const plain = {
    size: limits.historySize,
    ttlMs: limits.historyTtlMs,
    // The meta must outlive the kept entries, or they would be dropped with a new epoch.
    metaTtlMs: Math.max(limits.historyMetaTtlMs, limits.historyTtlMs),
  };
  if (!limits.inbox) return { plain, inbox: plain };
  const { size, ttlMs } = limits.inbox;
  return { plain, inbox: { size, ttlMs, metaTtlMs: Math.max(limits.historyMetaTtlMs, ttlMs) } };
}
