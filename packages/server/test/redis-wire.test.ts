/**
 * Unit tests of the Redis pub/sub wire format (src/broker/redis-wire.ts): exact encodings, round
 * trips in both routings (including ids and reasons full of separators), and rejection of
 * malformed payloads. No Redis needed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BrokerMessage } from '../src/broker/broker.js';
import { broadcastName, channelTag, decodeMessage, decodePubsub, encodeMessage, encodePubsub, pubsubAddress, WireError } from '../src/broker/redis-wire.js';

const frame = '{"type":"message","channel":"group:ops","epoch":"e-1_A","offset":7,"from":"a|b","topic":"t","data":"x|y\\n","ts":1}';

describe('redis-wire', () => {
  it('addresses a channel by its own hash-tagged name with interest routing', () => {
    assert.equal(channelTag('sb:', 'group:ops'), 'sb:{ch:group:ops}');
    assert.deepEqual(pubsubAddress('sb:', 'interest', 'group:ops'), { name: 'sb:{ch:group:ops}', payloadPrefix: '' });
  });

  it('addresses every channel to the cluster channel with broadcast routing, the channel in the payload', () => {
    assert.equal(broadcastName('sb:'), 'sb:{cluster}:all');
    assert.deepEqual(pubsubAddress('sb:', 'broadcast', 'group:ops'), { name: 'sb:{cluster}:all', payloadPrefix: '9:group:ops' });
  });

  it('encodes each kind in the documented format', () => {
    assert.equal(encodeMessage({ kind: 'message', epoch: 'e-1_A', offset: 7, frame }), `m|7|e-1_A|${frame}`);
    assert.equal(encodeMessage({ kind: 'presence', channel: 'group:ops', event: 'join', user: 'a|b', ts: 1732370000000 }), 'p|join|1732370000000|a|b');
    assert.equal(encodeMessage({ kind: 'disconnect', user: 'a|b', code: 4003, reason: 'kicked|out' }), 'd|4003|3|a|bkicked|out');
    assert.deepEqual(encodePubsub('sb:', 'broadcast', 'user:a|b', { kind: 'disconnect', user: 'a|b', code: 4003, reason: '' }), { name: 'sb:{cluster}:all', payload: '8:user:a|bd|4003|3|a|b' });
  });

  it('decodes what it encodes, in both routings, from strings and Buffers', () => {
    const messages: BrokerMessage[] = [
      { kind: 'message', epoch: 'e-1_A', offset: 7, frame },
      { kind: 'message', epoch: 'AAAAAAAA', offset: 0, frame: '' },
      { kind: 'presence', channel: 'group:o|p{s}', event: 'leave', user: '|', ts: 0 },
      { kind: 'disconnect', user: 'bob', code: 4003, reason: '' },
      { kind: 'disconnect', user: 'd|4003|3|', code: 1000, reason: 'é 👋 \n|' },
    ];
    for (const routing of ['interest', 'broadcast'] as const) {
      for (const message of messages) {
        const channel = message.kind === 'presence' ? message.channel : 'group:o|p{s}';
        const { name, payload } = encodePubsub('pre:', routing, channel, message);
        assert.deepEqual(decodePubsub('pre:', name, payload), { channel, message }, `${routing} ${payload}`);
        assert.deepEqual(decodePubsub('pre:', name, Buffer.from(payload, 'utf8')), { channel, message });
      }
    }
  });

  it('round-trips any message on any channel (property)', () => {
    const id = fc.string({ minLength: 1, maxLength: 20 });
    const message: fc.Arbitrary<BrokerMessage> = fc.oneof(
      fc.record({ kind: fc.constant('message' as const), epoch: fc.base64String({ minLength: 4, maxLength: 12 }).map((s) => s.replace(/[+/=]/g, '_') || 'e'), offset: fc.nat(), frame: fc.string() }),
      fc.record({ kind: fc.constant('presence' as const), channel: fc.constant(''), event: fc.constantFrom('join' as const, 'leave' as const), user: id, ts: fc.nat() }),
      fc.record({ kind: fc.constant('disconnect' as const), user: id, code: fc.integer({ min: 1000, max: 4999 }), reason: fc.string() }),
    );
    fc.assert(
      fc.property(fc.constantFrom('interest' as const, 'broadcast' as const), id, message, (routing, ch, m) => {
        const channel = `group:${ch}`;
        const expected: BrokerMessage = m.kind === 'presence' ? { ...m, channel } : { ...m }; // records come with a null prototype
        const { name, payload } = encodePubsub('sb:', routing, channel, expected);
        assert.deepEqual(decodePubsub('sb:', name, payload), { channel, message: expected });
      }),
    );
  });

  it('rejects malformed payloads with a WireError naming the channel', () => {
    const bad = ['', 'm', 'x|1|e|{}', 'm|1|e', 'm|-1|e|{}', 'm|1e3|e|{}', 'm| 1|e|{}', 'm|1||{}', 'm|99999999999999999|e|{}', 'p|joined|1|u', 'p|join|x|u', 'p|join|1', 'd|4003|9|bob', 'd|4003|bob', 'd|x|1|b'];
    for (const payload of bad) {
      assert.throws(() => decodeMessage('group:ops', payload), (err: unknown) => err instanceof WireError && err.message.includes('group:ops'), JSON.stringify(payload));
    }
  });

  it('rejects a pub/sub name that is not one of the prefix, and a bad broadcast channel prefix', () => {
    assert.throws(() => decodePubsub('sb:', 'other:{ch:group:ops}', 'p|join|1|u'), WireError);
    assert.throws(() => decodePubsub('sb:', 'sb:{ch:}', 'p|join|1|u'), WireError);
    assert.throws(() => decodePubsub('sb:', 'sb:{ch:group:ops', 'p|join|1|u'), WireError);
    assert.throws(() => decodePubsub('sb:', 'sb:{cluster}:all', 'p|join|1|u'), WireError, 'no channel prefix');
    assert.throws(() => decodePubsub('sb:', 'sb:{cluster}:all', '50:group:opsp|join|1|u'), WireError, 'channel longer than the payload');
    assert.throws(() => decodePubsub('sb:', 'sb:{cluster}:all', '9:group:opsq|join|1|u'), WireError, 'unknown kind after the prefix');
  });
});
