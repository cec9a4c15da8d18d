/**
 * Unit tests of the cluster wire format (src/broker/codec.ts): exact encodings, round trips of
 * ids and reasons full of separators, a property over any message on any channel, and rejection
 * of malformed payloads. No service needed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BrokerMessage } from '../src/broker/broker.js';
import { decode, encode, messageHead, WireError } from '../src/broker/codec.js';

const frame = '{"type":"message","channel":"group:ops","epoch":"e-1_A","offset":7,"from":"a|b","topic":"t","data":"x|y\\n é 👋","ts":1}';
const message = (epoch: string, offset: number, text: string): BrokerMessage => ({
  kind: 'message',
  epoch,
  offset,
  frame: Buffer.from(text),
});

describe('cluster codec', () => {
  it('encodes each kind in the documented format', () => {
    assert.equal(encode('group:ops', message('e-1_A', 7, frame)).toString(), `m9:group:ops|7|e-1_A|${frame}`);
    assert.equal(messageHead('group:ops'), 'm9:group:ops|');
    assert.equal(
      encode('group:ops', { kind: 'presence', channel: 'group:ops', event: 'join', user: 'a|b', ts: 1732370000000 }).toString(),
      'p9:group:ops|join|1732370000000|a|b',
    );
    assert.equal(
      encode('user:a|b', { kind: 'disconnect', user: 'a|b', code: 4003, reason: 'kicked|out ✓' }).toString(),
      'd8:user:a|b|4003|3|a|bkicked|out ✓',
    );
  });

  it('decodes what it encodes; a message frame is a view into the payload, not a copy', () => {
    const payload = encode('group:o|p{s}', message('e-1_A', 7, frame));
    const { channel, message: decoded } = decode(payload);
    assert.equal(channel, 'group:o|p{s}');
    assert.ok(decoded.kind === 'message');
    assert.deepEqual(decoded, message('e-1_A', 7, frame));
    assert.equal(decoded.frame.buffer, payload.buffer, 'the same memory');
    for (const m of [
      message('AAAAAAAA', 0, ''),
      { kind: 'presence', channel: 'group:|', event: 'leave', user: '|', ts: 0 },
      { kind: 'disconnect', user: 'bob', code: 4003, reason: '' },
      { kind: 'disconnect', user: 'd|4003|3|', code: 1000, reason: 'é 👋 \n|' },
    ] satisfies BrokerMessage[]) {
      const channel = m.kind === 'presence' ? m.channel : 'group:|';
      assert.deepEqual(decode(encode(channel, m)), { channel, message: m });
    }
  });

  it('round-trips any message on any channel (property)', () => {
    const id = fc.stringMatching(/^[\x21-\x39\x3b-\x7e]{1,40}$/);
    const arbitrary: fc.Arbitrary<BrokerMessage> = fc.oneof(
      fc
        .record({ epoch: fc.stringMatching(/^[A-Za-z0-9_-]{1,16}$/), offset: fc.nat(), text: fc.string({ unit: 'binary' }) })
        .map(({ epoch, offset, text }) => message(epoch, offset, text)),
      fc.record({
        kind: fc.constant('presence' as const),
        channel: fc.constant(''),
        event: fc.constantFrom('join' as const, 'leave' as const),
        user: id,
        ts: fc.nat(),
      }),
      fc.record({
        kind: fc.constant('disconnect' as const),
        user: id,
        code: fc.integer({ min: 1000, max: 4999 }),
        reason: fc.string({ unit: 'binary' }),
      }),
    );
    fc.assert(
      fc.property(id, arbitrary, (ch, m) => {
        const channel = `group:${ch}`;
        const expected: BrokerMessage = m.kind === 'presence' ? { ...m, channel } : { ...m }; // records come with a null prototype
        assert.deepEqual(decode(encode(channel, expected)), { channel, message: expected });
      }),
    );
  });

  it('rejects malformed payloads with a WireError', () => {
    const bad = [
      '',
      'm',
      'm9:group:ops',
      'x9:group:ops|1|e|{}',
      'm9:group:ops|1|e',
      'm9:group:ops|-1|e|{}',
      'm9:group:ops|1e3|e|{}',
      'm9:group:ops|1||{}',
      'm50:group:ops|1|e|{}',
      'mx:group:ops|1|e|{}',
      'm9:group:opsX1|e|{}',
      'm9:group:ops|99999999999999999|e|{}',
      'p9:group:ops|joined|1|u',
      'p9:group:ops|join|x|u',
      'p9:group:ops|join|1',
      'd9:group:ops|4003|9|bob',
      'd9:group:ops|4003|bob',
      'd9:group:ops|x|1|b',
    ];
    for (const payload of bad) {
      assert.throws(
        () => decode(Buffer.from(payload)),
        (err: unknown) => err instanceof WireError && err.code === 'ERR_WIRE_FORMAT' && /bad cluster payload/.test(err.message),
        JSON.stringify(payload),
      );
    }
  });
});
