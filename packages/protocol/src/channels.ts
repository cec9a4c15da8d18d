/** The channel every session is subscribed to and that only admins and the HTTP API may publish to. */
export const BROADCAST = 'broadcast';

/** A user id or group id: 1–128 printable ASCII characters, no whitespace and no `:`. */
export const ID_PATTERN = /^[\x21-\x39\x3b-\x7e]{1,128}$/;

/** A parsed channel name. */
export type ChannelRef = { kind: 'user'; id: string } | { kind: 'group'; id: string } | { kind: 'broadcast' };

/** Parses `user:<id>`, `group:<id>` or `broadcast`; returns `undefined` for anything else. */
export function parseChannel(name: string): ChannelRef | undefined {
  if (name === BROADCAST) return { kind: 'broadcast' };
  const colon = name.indexOf(':');
  if (colon < 0) return undefined;
  const prefix = name.slice(0, colon);
  const id = name.slice(colon + 1);
  if (!ID_PATTERN.test(id)) return undefined;
  if (prefix === 'user') return { kind: 'user', id };
  if (prefix === 'group') return { kind: 'group', id };
  return undefined;
}

/** True when `id` is a valid user or group id. */
export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/** The personal channel of a user. */
export function userChannel(user: string): string {
  return `user:${user}`;
}

/** The channel of a group. */
export function groupChannel(group: string): string {
  return `group:${group}`;
}
