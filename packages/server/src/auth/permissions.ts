import { BROADCAST, groupChannel, userChannel, type ChannelRef } from '@switchboard/protocol';
import type { Identity } from './token-verifier.js';

/** The channels every session of `identity` is subscribed to on connect. */
export function autoChannels(identity: Identity): string[] {
  return [userChannel(identity.user), BROADCAST, ...identity.groups.map(groupChannel)];
}

/** Why `identity` may not subscribe to `channel`, or `undefined` when it may. */
export function subscribeDenial(identity: Identity, channel: string, ref: ChannelRef): string | undefined {
  if (ref.kind === 'broadcast') return undefined;
  if (ref.kind === 'user' && ref.id === identity.user) return undefined;
  if (ref.kind === 'group' && identity.groups.includes(ref.id)) return undefined;
  if (identity.channels.includes(channel)) return undefined;
  return ref.kind === 'group' ? `not a member of ${channel}` : `not allowed to subscribe to ${channel}`;
}

/** Why `identity` may not publish to `channel`, or `undefined` when it may. */
export function publishDenial(identity: Identity, channel: string, ref: ChannelRef): string | undefined {
  switch (ref.kind) {
    case 'user':
      return undefined;
    case 'group':
      return identity.groups.includes(ref.id) ? undefined : `not a member of ${channel}`;
    case 'broadcast':
      return identity.admin ? undefined : 'publishing to broadcast needs role admin';
    default: {
      const never: never = ref;
      return `unknown channel kind ${String(never)}`;
    }
  }
}
