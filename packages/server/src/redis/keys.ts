/**
 * Redis key and pub/sub names shared by the Redis components. Every key of a channel shares one
 * hash tag, so a script's keys (and, with interest routing, its PUBLISH) live in one slot.
 */

/** `${prefix}{ch:${channel}}`: the base of a channel's keys (`…:stream`, `…:meta`) and its pub/sub name. */
export function channelTag(prefix: string, channel: string): string {
  return `${prefix}{ch:${channel}}`;
}

/** A node's own pub/sub name (hash routing): `${prefix}{node:${id}}`. */
export function nodeTag(prefix: string, nodeId: string): string {
  return `${prefix}{node:${nodeId}}`;
}

/** The pub/sub name every node listens on with broadcast routing: `${prefix}{cluster}:all`. */
export function clusterAllName(prefix: string): string {
  return `${prefix}{cluster}:all`;
}
