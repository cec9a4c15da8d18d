/**
 * Unit tests of parseClientFrame: what each frame type parses to, which ids are echoed for the
 * reply, that `__proto__`-style keys stay plain data, and that failure messages name the field;
 * and that the hand-written path for send and publish decides every frame as the schemas do.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseClientFrame, validateFrame, type ParseResult } from '../src/session/frame-parser.js';

const ID_MESSAGE = 'id must be a string of 1-64 characters or a safe integer';

/** Parses `frame` (JSON-encoded unless already text) and asserts it was accepted. */
function accept(frame: unknown): Record<string, unknown> {
  const result = parseClientFrame(typeof frame === 'string' ? frame : JSON.stringify(frame));
  assert.equal(result.ok, true, `expected ${JSON.stringify(frame)} to parse, got ${JSON.stringify(result)}`);
  return (result as Extract<ParseResult, { ok: true }>).frame as unknown as Record<string, unknown>;
}

/** Parses `frame` and asserts it was refused; returns the id and message. */
function refuse(frame: unknown): { id: string | number | undefined; message: string } {
  const result = parseClientFrame(typeof frame === 'string' ? frame : JSON.stringify(frame));
  assert.equal(result.ok, false, `expected ${typeof frame === 'string' ? frame : JSON.stringify(frame)} to be refused`);
  const { id, message } = result as Extract<ParseResult, { ok: false }>;
  return { id, message };
}

describe('parseClientFrame', () => {
  describe('valid frames', () => {
    it('parses send and defaults a missing data to null', () => {
      assert.deepEqual(accept({ type: 'send', to: 'bob', topic: 'chat' }), { type: 'send', to: 'bob', topic: 'chat', data: null });
    });

    it('parses send with its data as given', () => {
      assert.deepEqual(accept({ type: 'send', to: 'bob', topic: 'chat', data: { text: 'hi' }, id: 1 }), {
        type: 'send',
        to: 'bob',
        topic: 'chat',
        data: { text: 'hi' },
        id: 1,
      });
    });

    it('keeps falsy data (0, false, "", null) rather than defaulting it', () => {
      for (const data of [0, false, '', null]) {
        assert.equal(accept({ type: 'send', to: 'bob', topic: 't', data }).data, data, `data ${JSON.stringify(data)}`);
      }
    });

    it('parses a send that asks for a receipt, and drops receipt: false', () => {
      assert.deepEqual(accept({ type: 'send', to: 'bob', topic: 'chat', data: 1, receipt: true, id: 3 }), {
        type: 'send',
        to: 'bob',
        topic: 'chat',
        data: 1,
        receipt: true,
        id: 3,
      });
      assert.equal('receipt' in accept({ type: 'send', to: 'bob', topic: 'chat', receipt: false }), false);
    });

    it('parses an ack', () => {
      assert.deepEqual(accept({ type: 'ack', channel: 'user:bob', epoch: 'e9', offset: 13, id: 6 }), {
        type: 'ack',
        channel: 'user:bob',
        epoch: 'e9',
        offset: 13,
        id: 6,
      });
    });

    it('parses publish and defaults a missing data to null', () => {
      assert.deepEqual(accept({ type: 'publish', channel: 'group:ops', topic: 'alert' }), {
        type: 'publish',
        channel: 'group:ops',
        topic: 'alert',
        data: null,
      });
      assert.deepEqual(accept({ type: 'publish', channel: 'group:ops', topic: 'alert', data: [1, 2] }).data, [1, 2]);
    });

    it('parses subscribe with and without since', () => {
      assert.deepEqual(accept({ type: 'subscribe', channel: 'group:ops' }), { type: 'subscribe', channel: 'group:ops' });
      assert.deepEqual(accept({ type: 'subscribe', channel: 'group:ops', since: { epoch: 'e1', offset: 41 }, id: 3 }), {
        type: 'subscribe',
        channel: 'group:ops',
        since: { epoch: 'e1', offset: 41 },
        id: 3,
      });
      assert.deepEqual(accept({ type: 'subscribe', channel: 'broadcast', since: { epoch: '', offset: 0 } }).since, {
        epoch: '',
        offset: 0,
      });
    });

    it('parses unsubscribe, presence and ping', () => {
      assert.deepEqual(accept({ type: 'unsubscribe', channel: 'group:ops', id: 4 }), { type: 'unsubscribe', channel: 'group:ops', id: 4 });
      assert.deepEqual(accept({ type: 'presence', channel: 'group:ops', id: 5 }), { type: 'presence', channel: 'group:ops', id: 5 });
      assert.deepEqual(accept({ type: 'ping' }), { type: 'ping' });
    });

    it('drops unknown members, so a client cannot choose from', () => {
      assert.deepEqual(accept({ type: 'send', to: 'bob', topic: 't', data: 1, from: 'mallory', ts: 1, offset: 9 }), {
        type: 'send',
        to: 'bob',
        topic: 't',
        data: 1,
      });
      assert.deepEqual(accept({ type: 'ping', channel: 'x' }), { type: 'ping' });
    });

    it('does not treat channel names as valid here: the dispatcher checks them', () => {
      assert.equal(accept({ type: 'subscribe', channel: 'room:x' }).channel, 'room:x');
    });
  });

  describe('ids', () => {
    const valid: (string | number)[] = ['a', 'i'.repeat(64), '__proto__', '0', 0, -5, 42, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];

    it('echoes a string of 1-64 characters or a safe integer on an accepted frame', () => {
      for (const id of valid) assert.equal(accept({ type: 'ping', id }).id, id, `id ${JSON.stringify(id)}`);
    });

    it('echoes a valid id on a refused frame, so the refusal can be its reply', () => {
      for (const id of valid) assert.equal(refuse({ type: 'send', topic: 't', id }).id, id, `id ${JSON.stringify(id)}`);
    });

    it('leaves id undefined when the frame has none', () => {
      assert.equal(Object.hasOwn(accept({ type: 'ping' }), 'id'), false);
      assert.equal(refuse({ type: 'send', topic: 't' }).id, undefined);
    });

    it('refuses an invalid id with id undefined, even on an otherwise valid frame', () => {
      const invalid: unknown[] = ['', 'i'.repeat(65), 1.5, -0.5, 2 ** 53, -(2 ** 53), 1e308, null, true, [], [1], {}, { id: 1 }];
      for (const id of invalid) {
        assert.deepEqual(
          refuse({ type: 'send', to: 'bob', topic: 't', id }),
          { id: undefined, message: ID_MESSAGE },
          `id ${JSON.stringify(id)}`,
        );
      }
    });

    it('refuses ids that only exist as JSON text: -1e400, 1e400 and 2**64', () => {
      for (const literal of ['-1e400', '1e400', '18446744073709551616']) {
        assert.deepEqual(refuse(`{"type":"ping","id":${literal}}`), { id: undefined, message: ID_MESSAGE }, `id ${literal}`);
      }
    });

    it('uses the last id when the key is repeated, as JSON.parse does', () => {
      assert.equal(accept('{"type":"ping","id":1,"id":2}').id, 2);
      assert.deepEqual(refuse('{"type":"ping","id":1,"id":""}'), { id: undefined, message: ID_MESSAGE });
    });
  });

  describe('type', () => {
    it('keeps the id of a frame with an unknown type for the reply', () => {
      assert.deepEqual(refuse({ type: 'shout', id: 'abc' }), { id: 'abc', message: 'unknown type "shout"' });
      assert.deepEqual(refuse({ type: 'shout', id: 7 }), { id: 7, message: 'unknown type "shout"' });
    });

    it('quotes at most 32 characters of an unknown type', () => {
      assert.equal(refuse({ type: 'x'.repeat(10_000) }).message, `unknown type "${'x'.repeat(32)}"`);
    });

    it('refuses a missing or non-string type', () => {
      for (const type of [undefined, 7, null, true, ['send'], { send: 1 }]) {
        assert.deepEqual(refuse({ type, id: 1 }), { id: 1, message: 'type must be a string' }, `type ${JSON.stringify(type)}`);
      }
    });

    it('refuses the names of Object.prototype members and server frame types as unknown', () => {
      for (const type of [
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        'valueOf',
        'welcome',
        'message',
        'reply',
        'error',
        'pong',
        'SEND',
        'send ',
      ]) {
        assert.equal(refuse({ type, id: 1 }).message, `unknown type "${type}"`);
      }
    });
  });

  describe('not a JSON object', () => {
    it('refuses text that is not JSON', () => {
      for (const text of [
        '',
        ' ',
        'ping',
        '{"type":"ping"',
        '{"type":"ping"}}',
        "{'type':'ping'}",
        '\ufeff{"type":"ping"}',
        '{"type":"pi\u0001ng"}',
      ]) {
        assert.deepEqual(refuse(text), { id: undefined, message: 'frame is not valid JSON' }, JSON.stringify(text));
      }
    });

    it('refuses JSON that is not an object', () => {
      for (const text of ['null', '42', '"ping"', 'true', '[]', '[{"type":"ping","id":1}]', '-1e400']) {
        assert.deepEqual(refuse(text), { id: undefined, message: 'frame must be a JSON object' }, text);
      }
    });

    it('does not throw on 10k levels of nesting', () => {
      assert.deepEqual(refuse('['.repeat(10_000) + ']'.repeat(10_000)), { id: undefined, message: 'frame must be a JSON object' });
      assert.deepEqual(refuse('{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)), { id: undefined, message: 'type must be a string' });
    });
  });

  describe('messages name the bad field', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['send without to', { type: 'send', topic: 't' }, /^to: /],
      ['a numeric to', { type: 'send', to: 5, topic: 't' }, /^to: /],
      ['a to with a space', { type: 'send', to: 'a b', topic: 't' }, /^to: to must be a user id$/],
      ['a to with a colon', { type: 'send', to: 'user:bob', topic: 't' }, /^to: to must be a user id$/],
      ['a to of 129 characters', { type: 'send', to: 'b'.repeat(129), topic: 't' }, /^to: to must be a user id$/],
      ['send without topic', { type: 'send', to: 'bob' }, /^topic: /],
      ['a numeric topic', { type: 'publish', channel: 'group:a', topic: 7 }, /^topic: /],
      ['an empty topic', { type: 'send', to: 'bob', topic: '' }, /^topic: topic must not be empty$/],
      ['a topic of 129 characters', { type: 'send', to: 'bob', topic: 't'.repeat(129) }, /^topic: topic is longer than 128 characters$/],
      ['publish without channel', { type: 'publish', topic: 't' }, /^channel: /],
      [
        'a topic of the server',
        { type: 'send', to: 'bob', topic: '$receipt' },
        /^topic: topics starting with \$ are reserved for the server$/,
      ],
      [
        'a published topic of the server',
        { type: 'publish', channel: 'group:a', topic: '$x' },
        /^topic: topics starting with \$ are reserved/,
      ],
      ['a string receipt', { type: 'send', to: 'bob', topic: 't', receipt: 'yes' }, /^receipt: /],
      ['ack without epoch', { type: 'ack', channel: 'user:bob', offset: 3 }, /^epoch: /],
      ['ack with an empty epoch', { type: 'ack', channel: 'user:bob', epoch: '', offset: 3 }, /^epoch: /],
      ['ack with a negative offset', { type: 'ack', channel: 'user:bob', epoch: 'e', offset: -1 }, /^offset: /],
      ['ack with a string offset', { type: 'ack', channel: 'user:bob', epoch: 'e', offset: '3' }, /^offset: /],
      ['ack without channel', { type: 'ack', epoch: 'e', offset: 3 }, /^channel: /],
      ['an empty channel', { type: 'subscribe', channel: '' }, /^channel: /],
      ['a channel of 141 characters', { type: 'presence', channel: 'c'.repeat(141) }, /^channel: /],
      ['an object channel', { type: 'unsubscribe', channel: { name: 'broadcast' } }, /^channel: /],
      ['a string since', { type: 'subscribe', channel: 'broadcast', since: 'e1:4' }, /^since: /],
      ['a null since', { type: 'subscribe', channel: 'broadcast', since: null }, /^since: /],
      ['since without epoch', { type: 'subscribe', channel: 'broadcast', since: { offset: 1 } }, /^since\.epoch: /],
      [
        'an epoch of 65 characters',
        { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e'.repeat(65), offset: 1 } },
        /^since\.epoch: /,
      ],
      ['a negative offset', { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e', offset: -1 } }, /^since\.offset: /],
      ['a fractional offset', { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e', offset: 1.5 } }, /^since\.offset: /],
      ['an unsafe offset', { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e', offset: 2 ** 53 } }, /^since\.offset: /],
      ['a string offset', { type: 'subscribe', channel: 'broadcast', since: { epoch: 'e', offset: '4' } }, /^since\.offset: /],
    ];
    for (const [name, frame, message] of cases) {
      it(`names the field for ${name} and keeps the id`, () => {
        const result = refuse({ ...frame, id: name });
        assert.match(result.message, message);
        assert.equal(result.id, name);
      });
    }

    it('names since.offset for offsets only JSON text can hold', () => {
      for (const literal of ['1e308', '-1e400', '18446744073709551616']) {
        assert.match(
          refuse(`{"type":"subscribe","channel":"broadcast","since":{"epoch":"e","offset":${literal}}}`).message,
          /^since\.offset: /,
          literal,
        );
      }
    });
  });

  describe('prototype keys', () => {
    it('does not read required members through __proto__', () => {
      assert.match(refuse('{"type":"send","__proto__":{"to":"x"}}').message, /^to: /);
      assert.match(refuse('{"type":"send","__proto__":{"to":"bob","topic":"t"},"id":1}').message, /^to: /);
      assert.equal(refuse('{"__proto__":{"type":"ping"},"id":1}').message, 'type must be a string');
      assert.equal(Object.hasOwn(accept('{"type":"ping","__proto__":{"id":5}}'), 'id'), false, 'an id under __proto__ is not the frame id');
      assert.equal(Object.hasOwn(accept('{"type":"ping","__proto__":{"id":""}}'), 'id'), false, 'nor is an invalid one refused');
    });

    it('does not read required members through constructor.prototype', () => {
      assert.match(refuse('{"type":"send","constructor":{"prototype":{"to":"bob","topic":"t"}}}').message, /^to: /);
    });

    it('gives an accepted frame a plain prototype and no __proto__ or constructor member', () => {
      const frame = accept(
        '{"type":"send","to":"bob","topic":"t","__proto__":{"polluted":true,"to":"eve"},"constructor":{"prototype":{"polluted":true}}}',
      );
      assert.equal(Object.getPrototypeOf(frame), Object.prototype);
      assert.deepEqual(Object.keys(frame).sort(), ['data', 'to', 'topic', 'type']);
      assert.equal(frame.to, 'bob');
      assert.equal('polluted' in frame, false);
      assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('keeps a __proto__ key inside data as an own data member, not a prototype', () => {
      const frame = accept('{"type":"send","to":"bob","topic":"t","data":{"__proto__":{"admin":true}}}');
      const data = frame.data as Record<string, unknown>;
      assert.equal(Object.getPrototypeOf(data), Object.prototype);
      assert.equal(Object.hasOwn(data, '__proto__'), true);
      assert.equal((data as { admin?: unknown }).admin, undefined);
      assert.equal(JSON.stringify(data), '{"__proto__":{"admin":true}}');
    });
  });

  describe('the hot path for send and publish', () => {
    /** Values near every limit the schemas check, and of the wrong types. */
    const text = (max: number) =>
      fc.oneof(
        { arbitrary: fc.string({ minLength: 1, maxLength: 12 }), weight: 6 },
        fc.string({ minLength: 0, maxLength: max + 2 }),
        fc.constantFrom('x'.repeat(max), 'x'.repeat(max + 1), ''),
      );
    const wrong = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant([]), fc.constant({}));
    const field = <T>(arb: fc.Arbitrary<T>) =>
      fc.oneof({ arbitrary: arb, weight: 12 }, { arbitrary: wrong, weight: 1 }, { arbitrary: fc.constant(undefined), weight: 1 });
    const frame = fc.record(
      {
        type: fc.constantFrom('send', 'publish'),
        to: field(fc.oneof({ arbitrary: fc.constantFrom('bob', 'a:b', 'x y', 'é'), weight: 3 }, text(128))),
        channel: field(fc.oneof(fc.constantFrom('group:ops', 'user:bob', 'broadcast'), text(140))),
        topic: field(fc.oneof({ arbitrary: text(128), weight: 8 }, fc.constantFrom('$receipt', '$', 'a$'))),
        key: fc.option(field(text(128)), { nil: undefined, freq: 2 }),
        receipt: fc.option(field(fc.boolean()), { nil: undefined, freq: 2 }),
        id: fc.option(fc.oneof(fc.integer(), fc.double(), fc.constant(2 ** 53), text(64)), { nil: undefined }),
        data: fc.option(fc.jsonValue(), { nil: undefined }),
      },
      { requiredKeys: ['type'] },
    );

    it('accepts and refuses exactly what the schemas do, with the same frame or the same error', () => {
      let accepted = 0;
      fc.assert(
        fc.property(frame, (f) => {
          const json = JSON.stringify(f);
          const result = parseClientFrame(json);
          assert.deepEqual(result, validateFrame(JSON.parse(json) as Record<string, unknown>));
          if (result.ok) accepted++;
        }),
        { numRuns: 2000 },
      );
      // Both sides of the decision were exercised.
      assert.ok(accepted > 100 && accepted < 1900, `${accepted} of 2000 accepted`);
    });
  });
});
