/**
 * Property-based fuzzing of the client frame path against a real node over real sockets.
 *
 * Every generated frame is malformed on purpose: its expected outcome is derived from the bytes
 * alone (over `maxPayloadBytes` → close 1009, invalid UTF-8 in a text frame → close 1007, anything
 * else → one `bad_frame` answer: a failed `reply` when the frame carries a valid `id`, else an
 * `error` frame). Structured frames start from a base that is valid (the control suite proves it)
 * and aimed at a bystander, then get exactly one defect, so a validation gap shows up as a success
 * reply or as a message on the bystander's socket.
 *
 * Reproduce a failure with `FUZZ_SEED=<seed> node scripts/run-tests.mjs fuzz`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { ID_PATTERN, parseChannel } from '@switchboard/protocol';
import { MAX_DATA_DEPTH } from '../src/publication.js';
import { TestClient, api, sleep, startNode, type Frame, type TestNode } from './helpers.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_128);
const RUNS = 10_000;
const MAX_PAYLOAD = 65_536;
/** Generous: the machine is shared, an answer normally takes well under 10 ms. */
const ANSWER_TIMEOUT_MS = 5000;
const FUZZ_USER = 'fuzz';
const BYSTANDER = 'bystander';
const GROUP = 'g1';
/** Codes a malformed frame may be answered with. */
const ANSWER_CODES = new Set(['bad_frame', 'rate_limited', 'too_large']);
const TYPES = ['send', 'publish', 'subscribe', 'unsubscribe', 'presence', 'ping'] as const;
type FrameType = (typeof TYPES)[number];

// ---- frames as raw JSON text ---------------------------------------------------------------------

/** One member of a frame: its key and its value as raw JSON text (so `-1e400` stays literal). */
type Field = readonly [key: string, raw: string];

const str = (s: string) => JSON.stringify(s);
const objectText = (fields: readonly Field[]) => `{${fields.map(([k, v]) => `${str(k)}:${v}`).join(',')}}`;
const preview = (s: string) => (s.length > 120 ? `${s.slice(0, 120)}… (${s.length} chars)` : s);

/** Valid frames of every type for a session allowed to subscribe to `group:<group>`, aimed at `target` where they publish. */
function baseFrames(target: string, group: string): Record<FrameType, Field[]> {
  return {
    send: [
      ['type', str('send')],
      ['to', str(target)],
      ['topic', str('chat')],
      ['data', '{"text":"fuzz"}'],
    ],
    publish: [
      ['type', str('publish')],
      ['channel', str(`user:${target}`)],
      ['topic', str('chat')],
      ['data', '{"text":"fuzz"}'],
    ],
    subscribe: [
      ['type', str('subscribe')],
      ['channel', str(`group:${group}`)],
      ['since', '{"epoch":"e1","offset":0}'],
    ],
    unsubscribe: [
      ['type', str('unsubscribe')],
      ['channel', str(`group:${group}`)],
    ],
    presence: [
      ['type', str('presence')],
      ['channel', str(`group:${group}`)],
    ],
    ping: [['type', str('ping')]],
  };
}
const BASES = baseFrames(BYSTANDER, GROUP);

/** Fields without which each type is malformed. */
const REQUIRED: Record<FrameType, string[]> = {
  send: ['type', 'to', 'topic'],
  publish: ['type', 'channel', 'topic'],
  subscribe: ['type', 'channel'],
  unsubscribe: ['type', 'channel'],
  presence: ['type', 'channel'],
  ping: ['type'],
};

/** Fields a mutation may give a wrong value; `data` is absent because any JSON value is valid data. */
const MUTABLE: Record<FrameType, string[]> = {
  send: ['type', 'id', 'to', 'topic'],
  publish: ['type', 'id', 'channel', 'topic'],
  subscribe: ['type', 'id', 'channel', 'since', 'since.epoch', 'since.offset'],
  unsubscribe: ['type', 'id', 'channel'],
  presence: ['type', 'id', 'channel'],
  ping: ['type', 'id'],
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isValidId = (v: unknown) =>
  (typeof v === 'string' && v.length >= 1 && v.length <= 64) || (typeof v === 'number' && Number.isSafeInteger(v));
const isEpoch = (v: unknown) => typeof v === 'string' && v.length <= 64;
const isOffset = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * What the protocol accepts for each field. Wrong values are filtered through these, so a random
 * draw that happens to be valid (a `"ping"` type, an id of `1.0`) is never sent as "malformed".
 * A channel counts as valid when it parses at all: a valid but foreign one would be `forbidden`.
 */
const VALID: Record<string, (v: unknown) => boolean> = {
  type: (v) => typeof v === 'string' && (TYPES as readonly string[]).includes(v),
  id: isValidId,
  to: (v) => typeof v === 'string' && ID_PATTERN.test(v),
  topic: (v) => typeof v === 'string' && v.length >= 1 && v.length <= 128,
  channel: (v) => typeof v === 'string' && parseChannel(v) !== undefined,
  since: (v) => isObject(v) && isEpoch(v.epoch) && isOffset(v.offset),
  'since.epoch': isEpoch,
  'since.offset': isOffset,
};

/** Nesting `depth` levels deep as text (mixed rounds up to even), built without recursion. */
function deepText(depth: number, shape: 'array' | 'object' | 'mixed'): string {
  if (shape === 'array') return '['.repeat(depth) + ']'.repeat(depth);
  if (shape === 'object') return '{"a":'.repeat(depth) + 'null' + '}'.repeat(depth);
  const half = Math.ceil(depth / 2);
  return '[{"a":'.repeat(half) + '0' + '}]'.repeat(half);
}

// ---- arbitraries ---------------------------------------------------------------------------------

const frameType = fc.constantFrom(...TYPES);
const deepShape = fc.constantFrom<'array' | 'object' | 'mixed'>('array', 'object', 'mixed');
const deepRaw = fc.tuple(fc.integer({ min: 1, max: 10_000 }), deepShape).map(([d, s]) => deepText(d, s));
/** Long strings, some past the frame limit so the same generator also yields 1009 closes. */
const longStringRaw = fc
  .tuple(fc.constantFrom('x', 'é', '€', '😀', '\\u0000', ' '), fc.integer({ min: 129, max: 70_000 }))
  .map(([unit, n]) => `"${unit.repeat(n)}"`);
const controlStringRaw = fc
  .array(fc.integer({ min: 0, max: 0x1f }), { minLength: 1, maxLength: 8 })
  .map((codes) => str(String.fromCharCode(...codes)));

/** Any JSON value as text, biased towards the hostile: huge numbers, deep nesting, prototype keys. */
const exoticRaw: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'null',
      'true',
      'false',
      '0',
      '-1',
      '1.5',
      '-0.5',
      '1e308',
      '-1e308',
      '-1e400',
      '1e400',
      '1e-400',
      '18446744073709551616',
      '-18446744073709551616',
      '9007199254740992',
      '123456789012345678901234567890',
      '[]',
      '{}',
      '[null]',
      '{"a":1}',
      '""',
      '"\\u0000"',
      '"\\ud800"',
      '"\\u202e"',
      '{"__proto__":{"polluted":true,"to":"bystander"}}',
      '{"constructor":{"prototype":{"polluted":true}}}',
      '{"prototype":{"polluted":true}}',
      '["__proto__"]',
    ),
  },
  { weight: 2, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.maxSafeInteger().map((n) => String(n * 1024)) },
  { weight: 2, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }).map(str) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map(str) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: deepRaw },
  { weight: 2, arbitrary: longStringRaw },
  { weight: 2, arbitrary: controlStringRaw },
);

/** Values that look almost right for a field: the off-by-one and look-alike cases. */
const NEAR_MISS: Record<string, string[]> = {
  type: [
    'SEND',
    'Send',
    'send ',
    ' ping',
    'pong',
    'welcome',
    'message',
    'reply',
    'error',
    'ping\u0000',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'valueOf',
    '',
  ].map(str),
  id: [
    '""',
    str('i'.repeat(65)),
    '9007199254740992',
    '-9007199254740992',
    '1.5',
    '1e308',
    '-1e400',
    '18446744073709551616',
    'null',
    'true',
    '[1]',
    '{"id":1}',
  ],
  to: [
    'bystander ',
    ' bystander',
    'by stander',
    'user:bystander',
    'bystander\u0000',
    'bystander\u007f',
    'bÿstander',
    '',
    'b'.repeat(129),
  ].map(str),
  topic: ['', 't'.repeat(129)].map(str),
  channel: [
    'user:',
    'group:',
    'user:bystander:x',
    'user: bystander',
    'User:bystander',
    'broadcast ',
    'Broadcast',
    'nope',
    'room:x',
    '',
    'user:\u0000',
    `user:${'b'.repeat(129)}`,
    'c'.repeat(141),
  ].map(str),
  since: ['null', '"e1:0"', '0', '[]', '{}', '{"epoch":"e1"}', '{"offset":0}', '{"epoch":1,"offset":0}', '{"epoch":"e1","offset":"0"}'],
  'since.epoch': ['null', '1', '[]', '{}', str('e'.repeat(65))],
  'since.offset': ['-1', '1.5', '"0"', 'null', '9007199254740992', '1e308', '-1e400', '18446744073709551616', '[]'],
};

/** Raw JSON values that the field `name` must reject. */
function wrongValue(name: string): fc.Arbitrary<string> {
  return fc.oneof(exoticRaw, fc.constantFrom(...NEAR_MISS[name]!)).filter((raw) => !VALID[name]!(JSON.parse(raw)));
}

const validIdRaw = fc.oneof(
  fc.maxSafeInteger().map(String),
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.string({ minLength: 1, maxLength: 64 }).map(str),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'i'.repeat(64)).map(str),
);
const maybeId = fc.option(validIdRaw, { nil: undefined });

/** A base frame, with an optional valid id, its members rotated so `type` is not always first. */
function baseWith(type: FrameType, id: string | undefined, rotation: number): Field[] {
  const fields: Field[] = [...BASES[type], ...(id === undefined ? [] : [['id', id] as const])];
  const k = rotation % fields.length;
  return [...fields.slice(k), ...fields.slice(0, k)];
}

/** Sets `name` to `raw`; with `duplicate`, the wrong value follows the valid one as a second key (the last wins). */
function withField(fields: Field[], name: string, raw: string, duplicate: boolean): Field[] {
  let key = name;
  let value = raw;
  if (name === 'since.epoch') [key, value] = ['since', `{"epoch":${raw},"offset":0}`];
  if (name === 'since.offset') [key, value] = ['since', `{"epoch":"e1","offset":${raw}}`];
  if (duplicate || !fields.some(([k]) => k === key)) return [...fields, [key, value]];
  return fields.map(([k, v]) => (k === key ? [k, value] : [k, v]));
}

/** One frame to send, and a short description for failure reports. */
interface FuzzCase {
  label: string;
  payload: string | Buffer;
  binary: boolean;
}

/** The case as failure reports show it: its label, never its (possibly 70 KB) payload. */
const summary = (c: FuzzCase) => `${c.label} [${c.binary ? 'binary' : 'text'}, ${Buffer.byteLength(c.payload)} bytes]`;

function fuzzCase(label: string, payload: string | Buffer, binary = false): FuzzCase {
  const c: FuzzCase = { label, payload, binary };
  // fast-check prints counterexamples with this method instead of dumping the payload.
  Object.defineProperty(c, fc.toStringMethod, { value: () => summary(c) });
  return c;
}

const pair = (type: FrameType, names: string[]) => names.map((n) => [type, n] as const);

/** One field of a base frame gets a wrong value (send/publish also get hostile, still valid, data). */
const wrongFieldCase = fc.constantFrom(...TYPES.flatMap((t) => pair(t, MUTABLE[t]))).chain(([type, name]) =>
  fc
    .record({
      raw: wrongValue(name),
      id: maybeId,
      rotation: fc.nat(),
      duplicate: fc.boolean(),
      data: fc.option(exoticRaw, { nil: undefined }),
    })
    .map(({ raw, id, rotation, duplicate, data }) => {
      let fields = baseWith(type, name === 'id' ? (duplicate ? id : undefined) : id, rotation);
      if (data !== undefined && (type === 'send' || type === 'publish')) fields = withField(fields, 'data', data, false);
      fields = withField(fields, name, raw, duplicate && fields.some(([k]) => k === name.split('.')[0]));
      return fuzzCase(`${type} with ${name} = ${preview(raw)}${duplicate ? ' (as a duplicate key)' : ''}`, objectText(fields));
    }),
);

const missingFieldCase = fc
  .constantFrom(...TYPES.flatMap((t) => pair(t, REQUIRED[t])))
  .chain(([type, name]) =>
    fc
      .tuple(maybeId, fc.nat())
      .map(([id, rotation]) => fuzzCase(`${type} without ${name}`, objectText(baseWith(type, id, rotation).filter(([k]) => k !== name)))),
  );

/** Required members moved under `__proto__`, `constructor.prototype` or `prototype`: they must not count. */
const protoCase = fc
  .tuple(frameType, fc.constantFrom('__proto__', 'constructor', 'prototype'), maybeId, fc.nat())
  .chain(([type, holder, id, rotation]) =>
    fc.subarray(REQUIRED[type], { minLength: 1 }).map((moved) => {
      const fields = baseWith(type, id, rotation);
      const inner = objectText(fields.filter(([k]) => moved.includes(k)));
      const smuggled: Field = holder === 'constructor' ? ['constructor', `{"prototype":${inner}}`] : [holder, inner];
      return fuzzCase(
        `${type} with ${moved.join(',')} under ${holder}`,
        objectText([...fields.filter(([k]) => !moved.includes(k)), smuggled]),
      );
    }),
  );

/** An otherwise valid send/publish whose data nests deeper than the server accepts. */
const deepDataCase = fc
  .tuple(fc.constantFrom<FrameType>('send', 'publish'), fc.integer({ min: MAX_DATA_DEPTH + 1, max: 12_000 }), deepShape, maybeId)
  .map(([type, depth, shape, id]) => {
    const text = deepText(depth, shape);
    return fuzzCase(`${type} with data nested ${depth} deep (${shape})`, objectText(withField(baseWith(type, id, 0), 'data', text, false)));
  });

const validFrameText = fc.tuple(frameType, maybeId, fc.nat()).map(([type, id, rotation]) => objectText(baseWith(type, id, rotation)));

const truncatedCase = validFrameText.chain((text) =>
  fc.nat({ max: text.length - 1 }).map((cut) => fuzzCase(`truncated at ${cut}: ${preview(text.slice(0, cut))}`, text.slice(0, cut))),
);

const garbageCase = fc
  .oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 100 }))
  .filter((s) => s !== 'ping')
  .map((s) => fuzzCase(`random text ${preview(JSON.stringify(s))}`, s));

const nonObjectCase = fc
  .oneof(
    fc
      .jsonValue()
      .filter((v) => !isObject(v))
      .map((v) => JSON.stringify(v)),
    fc.array(validFrameText, { minLength: 1, maxLength: 3 }).map((frames) => `[${frames.join(',')}]`),
    fc.constantFrom('"ping"', 'null', '-1e400', '1e308', '18446744073709551616'),
  )
  .map((text) => fuzzCase(`JSON that is not an object: ${preview(text)}`, text));

const deepFrameCase = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), deepShape)
  .map(([d, s]) => fuzzCase(`a whole frame nested ${d} deep (${s})`, deepText(d, s)));

/** Raw control characters: inside a JSON string (never legal) or between tokens (only space, \t, \n, \r are). */
const controlCase = fc
  .tuple(validFrameText, fc.integer({ min: 0, max: 0x1f }), fc.nat(), fc.boolean())
  .filter(([, code, , inString]) => inString || ![0x09, 0x0a, 0x0d].includes(code))
  .map(([text, code, at, inString]) => {
    const ch = String.fromCharCode(code);
    let out: string;
    if (inString) {
      // Just after an opening quote of a key or value: always inside a string literal.
      const quotes = [...text.matchAll(/[{,:]"/g)].map((m) => m.index + 2);
      const pos = quotes[at % quotes.length]!;
      out = text.slice(0, pos) + ch + text.slice(pos);
    } else {
      const spots = [0, 1, text.length - 1, text.length];
      const pos = spots[at % spots.length]!;
      out = text.slice(0, pos) + ch + text.slice(pos);
    }
    return fuzzCase(
      `control character U+${code.toString(16).padStart(4, '0')} ${inString ? 'in a string' : 'between tokens'}: ${preview(JSON.stringify(out))}`,
      out,
    );
  })
  // A string id ending in `:` or `,` makes a "string start" that is really a string end, where
  // \t, \n and \r are legal whitespace: keep only what really broke the JSON.
  .filter((c) => declaredJson(c.payload as string) === undefined);

const INVALID_UTF8 = [
  [0xff],
  [0xfe],
  [0x80],
  [0xc3],
  [0xc0, 0xaf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
];

const invalidUtf8Case = fc
  .tuple(fc.oneof(validFrameText, fc.string({ unit: 'binary-ascii', maxLength: 100 })), fc.constantFrom(...INVALID_UTF8), fc.nat())
  .map(([text, bad, at]) => {
    const ascii = Buffer.from(text, 'utf8');
    const pos = at % (ascii.length + 1);
    const bytes = Buffer.concat([ascii.subarray(0, pos), Buffer.from(bad), ascii.subarray(pos)]);
    return fuzzCase(`invalid UTF-8 ${Buffer.from(bad).toString('hex')} at byte ${pos} of ${preview(text)}`, bytes);
  });

const binaryCase = fc
  .oneof(
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    validFrameText.map((t) => Buffer.from(t)),
  )
  .map((buf) => fuzzCase(`binary frame of ${buf.length} bytes`, buf, true));

const oversizedCase = fc
  .tuple(fc.constantFrom('text', 'json', 'binary', 'invalid-utf8'), fc.integer({ min: 1, max: 8000 }))
  .map(([kind, extra]) => {
    const size = MAX_PAYLOAD + extra;
    if (kind === 'binary') return fuzzCase(`binary frame of ${size} bytes`, Buffer.alloc(size, 0x7b), true);
    if (kind === 'invalid-utf8') return fuzzCase(`invalid UTF-8 text frame of ${size} bytes`, Buffer.alloc(size, 0xff));
    if (kind === 'text') return fuzzCase(`text frame of ${size} bytes`, 'a'.repeat(size));
    const head = `{"type":"send","to":"${BYSTANDER}","topic":"chat","data":"`;
    return fuzzCase(`valid send of ${size} bytes`, `${head}${'d'.repeat(size - head.length - 2)}"}`);
  });

const emptyCase = fc.constantFrom(fuzzCase('an empty text frame', ''), fuzzCase('an empty binary frame', Buffer.alloc(0), true));

const anyCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 30, arbitrary: wrongFieldCase },
  { weight: 5, arbitrary: missingFieldCase },
  { weight: 6, arbitrary: protoCase },
  { weight: 5, arbitrary: deepDataCase },
  { weight: 6, arbitrary: truncatedCase },
  { weight: 8, arbitrary: garbageCase },
  { weight: 5, arbitrary: nonObjectCase },
  { weight: 3, arbitrary: deepFrameCase },
  { weight: 6, arbitrary: controlCase },
  { weight: 5, arbitrary: invalidUtf8Case },
  { weight: 5, arbitrary: binaryCase },
  { weight: 2, arbitrary: oversizedCase },
  { weight: 1, arbitrary: emptyCase },
);

/** Named cases from the brief, sent before the random ones so they run whatever the seed. */
const CORPUS: FuzzCase[] = [
  fuzzCase('send with to under __proto__', '{"type":"send","__proto__":{"to":"x"}}'),
  fuzzCase('send with to and topic under __proto__', '{"type":"send","__proto__":{"to":"bystander","topic":"chat"}}'),
  fuzzCase(
    'send with to and topic under constructor.prototype',
    '{"type":"send","constructor":{"prototype":{"to":"bystander","topic":"chat"}},"id":1}',
  ),
  fuzzCase('type under __proto__', '{"__proto__":{"type":"ping"},"id":2}'),
  ...['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'].map((t) =>
    fuzzCase(`type ${t}`, `{"type":"${t}","id":"${t}"}`),
  ),
  ...['1e308', '-1e400', '18446744073709551616', '9007199254740992'].flatMap((n) => [
    fuzzCase(`id ${n}`, `{"type":"send","to":"bystander","topic":"chat","id":${n}}`),
    fuzzCase(`since.offset ${n}`, `{"type":"subscribe","channel":"group:g1","since":{"epoch":"e1","offset":${n}},"id":3}`),
    fuzzCase(`topic ${n}`, `{"type":"send","to":"bystander","topic":${n},"id":4}`),
  ]),
  fuzzCase('10k nested arrays', deepText(10_000, 'array')),
  fuzzCase('10k nested objects', deepText(10_000, 'object')),
  fuzzCase('send with 10k nested data, with id', objectText([...BASES.send.slice(0, 3), ['data', deepText(10_000, 'array')], ['id', '5']])),
  fuzzCase('send with 10k nested data, without id', objectText([...BASES.send.slice(0, 3), ['data', deepText(10_000, 'array')]])),
  fuzzCase(
    `send with data nested ${MAX_DATA_DEPTH + 1} deep`,
    objectText([...BASES.send.slice(0, 3), ['data', deepText(MAX_DATA_DEPTH + 1, 'array')], ['id', '6']]),
  ),
  fuzzCase('unsubscribe from an invalid channel name', '{"type":"unsubscribe","channel":"nope","id":7}'),
  fuzzCase('topic of 60000 characters', `{"type":"send","to":"bystander","topic":"${'t'.repeat(60_000)}","id":8}`),
  fuzzCase('an empty text frame', ''),
  fuzzCase('an empty binary frame', Buffer.alloc(0), true),
  fuzzCase('a valid ping as a binary frame', Buffer.from('{"type":"ping","id":9}'), true),
  ...[
    '\u0000',
    ' ',
    '\r\n',
    '\ufeff{"type":"ping"}',
    '{}',
    '[]',
    'null',
    '"ping"',
    'PING',
    'ping ',
    ' ping',
    'pong',
    '{"type":"ping"}}',
  ].map((t) => fuzzCase(`text ${JSON.stringify(t)}`, t)),
  ...INVALID_UTF8.map((bad) =>
    fuzzCase(
      `invalid UTF-8 ${Buffer.from(bad).toString('hex')}`,
      Buffer.from([...Buffer.from('{"type":"ping","x":"'), ...bad, ...Buffer.from('"}')]),
    ),
  ),
  fuzzCase('text frame one byte over the limit', 'a'.repeat(MAX_PAYLOAD + 1)),
];

// ---- expectations --------------------------------------------------------------------------------

type Expected = { kind: 'answer'; replyId: string | number | undefined } | { kind: 'close'; code: 1007 | 1009 };

/** `text` parsed, or undefined when it is not JSON. */
function declaredJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The id the server must echo: a valid `id` member of a parsable JSON object, else none (an `error` frame). */
function declaredId(text: string): string | number | undefined {
  const value = declaredJson(text);
  if (!isObject(value) || !Object.hasOwn(value, 'id')) return undefined;
  return isValidId(value.id) ? (value.id as string | number) : undefined;
}

/** The outcome the protocol prescribes for a frame, from its bytes alone. */
function expectationOf(c: FuzzCase): Expected {
  const bytes = typeof c.payload === 'string' ? Buffer.from(c.payload, 'utf8') : c.payload;
  if (bytes.length > MAX_PAYLOAD) return { kind: 'close', code: 1009 };
  if (c.binary) return { kind: 'answer', replyId: undefined };
  if (!isUtf8(bytes)) return { kind: 'close', code: 1007 };
  return { kind: 'answer', replyId: declaredId(bytes.toString('utf8')) };
}

/** Checks one answer frame against the expectation; returns a complaint or undefined. */
function checkAnswer(frame: Frame, replyId: string | number | undefined): string | undefined {
  const text = JSON.stringify(frame);
  if (text.length > 1024) return `answer of ${text.length} characters echoes too much input`;
  const error = frame.error as Frame | undefined;
  if (!error || !ANSWER_CODES.has(error.code) || typeof error.message !== 'string' || error.message.length === 0) {
    return `expected a bad_frame/rate_limited/too_large answer with a message, got ${text}`;
  }
  if (replyId === undefined) {
    if (frame.type !== 'error' || Object.keys(frame).length !== 2) return `expected an error frame, got ${text}`;
  } else if (frame.type !== 'reply' || frame.id !== replyId || frame.ok !== false) {
    return `expected a failed reply with id ${JSON.stringify(replyId)}, got ${text}`;
  }
  return undefined;
}

const protoKeys = () => ({
  object: Reflect.ownKeys(Object.prototype).map(String).sort(),
  array: Reflect.ownKeys(Array.prototype).map(String).sort(),
  function: Reflect.ownKeys(Function.prototype).map(String).sort(),
  string: Reflect.ownKeys(String.prototype).map(String).sort(),
});

// ---- tests ---------------------------------------------------------------------------------------

describe('fuzzing the frame path', () => {
  let node: TestNode;
  let bystander: TestClient;
  let fuzz: TestClient;
  /** Answers taken on the current fuzz client (its welcome excluded). */
  let taken = 0;
  const clients: TestClient[] = [];
  const protoBefore = protoKeys();
  const stats = { sent: 0, answered: 0, closes: 0 };
  let previous = '(none)';

  async function connectFuzz(): Promise<void> {
    // `channels`, not `groups`: the group stays subscribable without auto-subscribing, whose
    // presence `join` would land on the fuzz socket between answers.
    fuzz = await TestClient.connect(node, FUZZ_USER, { channels: [`group:${GROUP}`] });
    clients.push(fuzz);
    taken = 0;
  }

  /** Sends one case on the fuzz client and checks the one outcome it must have. */
  async function fire(c: FuzzCase): Promise<void> {
    // Anything beyond the welcome and the answers taken so far arrived unasked: a second answer, a
    // delivery or a close after an answer (bad_frame must leave the session open).
    assert.equal(fuzz.closeCode, undefined, `the session closed (${fuzz.closeCode} ${fuzz.closeReason}) after answering: ${previous}`);
    assert.equal(
      fuzz.frames.length,
      1 + taken,
      `unexpected frames after ${previous}: ${JSON.stringify(fuzz.frames.slice(1 + taken)).slice(0, 500)}`,
    );
    previous = summary(c);
    const expected = expectationOf(c);
    fuzz.ws.send(c.payload, { binary: c.binary });
    stats.sent++;
    let frame: Frame | undefined;
    try {
      frame = await fuzz.next(() => true, ANSWER_TIMEOUT_MS);
      taken++;
    } catch (err) {
      if (fuzz.closeCode === undefined) throw new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms to ${previous}`, { cause: err });
    }
    stats.answered++;
    if (frame === undefined) {
      stats.closes++;
      const { closeCode, closeReason } = fuzz;
      await connectFuzz();
      if (expected.kind !== 'close') assert.fail(`${previous}: expected an answer, the session closed with ${closeCode} ${closeReason}`);
      assert.equal(closeCode, expected.code, `${previous}: close code`);
      return;
    }
    if (expected.kind === 'close') assert.fail(`${previous}: expected close ${expected.code}, got ${JSON.stringify(frame).slice(0, 500)}`);
    const complaint = checkAnswer(frame, expected.replyId);
    if (complaint) assert.fail(`${previous}: ${complaint}`);
  }

  before(async () => {
    node = await startNode({ rateLimitPerSecond: 100_000, rateLimitBurst: 100_000, maxPayloadBytes: MAX_PAYLOAD });
    bystander = await TestClient.connect(node, BYSTANDER);
    clients.push(bystander);
    await connectFuzz();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node.stop();
  });

  it(`answers each of ${CORPUS.length} named and ${RUNS} generated malformed frames with bad_frame or a protocol close (seed ${SEED})`, async () => {
    for (const c of CORPUS) await fire(c);
    try {
      await fc.assert(fc.asyncProperty(anyCase, fire), { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true });
    } catch (err) {
      throw new Error(`fuzzing failed with seed ${SEED}; rerun with FUZZ_SEED=${SEED}\n${(err as Error).message}`, { cause: err });
    }
    assert.equal(stats.sent, CORPUS.length + RUNS);
    assert.equal(stats.answered, stats.sent, 'every frame got an answer or a close');
    assert.ok(
      stats.closes >= INVALID_UTF8.length + 1,
      `the named invalid UTF-8 and oversized frames closed sessions (${stats.closes} closes)`,
    );
    // The last frame must not have drawn a late second answer or closed the session.
    await sleep(100);
    assert.equal(fuzz.frames.length, 1 + taken, `unexpected frames after ${previous}`);
    const ping = await fuzz.request({ type: 'ping' });
    assert.equal(ping.ok, true, 'the fuzzed session still works');
  });

  it('delivered nothing from the fuzzing: the bystander gets the next send as the first publication of its channel', async () => {
    const carol = await TestClient.connect(node, 'carol');
    clients.push(carol);
    const reply = await carol.request({ type: 'send', to: BYSTANDER, topic: 'after-fuzz', data: { n: 1 } });
    assert.equal(reply.ok, true);
    assert.equal(reply.offset, 1, 'no fuzz frame may have published to user:bystander, delivered or not');
    const msg = await bystander.next((f) => f.type === 'message');
    assert.deepEqual(
      { from: msg.from, topic: msg.topic, data: msg.data, offset: msg.offset },
      { from: 'carol', topic: 'after-fuzz', data: { n: 1 }, offset: 1 },
    );
    assert.deepEqual(
      bystander.frames.map((f) => f.type),
      ['welcome', 'message'],
      'the bystander received only its welcome and the send',
    );
    assert.equal(bystander.closeCode, undefined);
    for (const channel of [`group:${GROUP}`, 'broadcast', `user:${FUZZ_USER}`]) {
      const history = await api(node, 'GET', `/v1/history/${channel}?since=0&limit=10`);
      assert.equal(history.status, 200);
      assert.deepEqual(history.body.messages, [], `nothing was published to ${channel}`);
    }
  });

  it('stays healthy, logs no error and leaves the built-in prototypes untouched', async () => {
    const health = await api(node, 'GET', '/healthz', undefined, null);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, 'ok');
    const errors = node.logs.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    assert.deepEqual(errors, [], 'a malformed frame must never reach the error log (internal error)');
    assert.deepEqual(protoKeys(), protoBefore, 'no key was added to a built-in prototype');
    const probe = {} as Record<string, unknown>;
    for (const key of ['to', 'topic', 'type', 'polluted', 'channel']) assert.equal(probe[key], undefined, `Object.prototype.${key}`);
  });
});

describe('fuzzing controls', () => {
  let node: TestNode;
  const clients: TestClient[] = [];
  before(async () => (node = await startNode()));
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node.stop();
  });

  it('accepts every unmutated base frame, so each fuzz mutation is what makes a frame bad', async () => {
    const witness = await TestClient.connect(node, 'witness');
    const sender = await TestClient.connect(node, 'sender', { channels: [`group:${GROUP}`] });
    clients.push(witness, sender);
    const bases = baseFrames('witness', GROUP);
    // unsubscribe needs the subscription that subscribe makes.
    for (const [i, type] of (['send', 'publish', 'subscribe', 'presence', 'ping', 'unsubscribe'] as const).entries()) {
      sender.send(objectText([...bases[type], ['id', String(i + 1)]]));
      const reply = await sender.next((f) => f.type === 'reply' && f.id === i + 1);
      assert.equal(reply.ok, true, `${type}: ${JSON.stringify(reply)}`);
    }
    const messages = await witness.waitMessages(2);
    assert.deepEqual(
      messages.map((m) => [m.channel, m.from, m.topic]),
      [
        ['user:witness', 'sender', 'chat'],
        ['user:witness', 'sender', 'chat'],
      ],
    );
  });

  it(`accepts data nested exactly ${MAX_DATA_DEPTH} deep and other hostile but valid data`, async () => {
    const sender = await TestClient.connect(node, 'deep-sender');
    const target = await TestClient.connect(node, 'deep-target');
    clients.push(sender, target);
    const datas = [deepText(MAX_DATA_DEPTH, 'array'), '{"__proto__":{"polluted":true}}', '1e308', '-1e400'];
    for (const [i, data] of datas.entries()) {
      sender.send(`{"type":"send","to":"deep-target","topic":"t","data":${data},"id":${i + 1}}`);
      const reply = await sender.next((f) => f.type === 'reply' && f.id === i + 1);
      assert.equal(reply.ok, true, `data ${preview(data)}: ${JSON.stringify(reply)}`);
    }
    const messages = await target.waitMessages(datas.length);
    assert.equal(JSON.stringify(messages[0]!.data), deepText(MAX_DATA_DEPTH, 'array'));
    assert.equal(JSON.stringify(messages[1]!.data), '{"__proto__":{"polluted":true}}', 'a __proto__ key is data like any other');
    assert.equal(messages[2]!.data, 1e308);
    assert.equal(messages[3]!.data, null, '-1e400 parses to -Infinity, which JSON writes as null');
  });

  it('derives expectations that can fail: a valid frame is not counted as malformed', () => {
    assert.deepEqual(expectationOf(fuzzCase('valid send with id', objectText([...BASES.send, ['id', '"x"']]))), {
      kind: 'answer',
      replyId: 'x',
    });
    assert.equal(checkAnswer({ type: 'reply', id: 'x', ok: true }, 'x') !== undefined, true, 'an ok reply is a complaint');
    assert.equal(
      checkAnswer({ type: 'reply', id: 'y', ok: false, error: { code: 'bad_frame', message: 'm' } }, 'x') !== undefined,
      true,
      'a wrong id is a complaint',
    );
    assert.equal(
      checkAnswer({ type: 'error', error: { code: 'forbidden', message: 'm' } }, undefined) !== undefined,
      true,
      'forbidden is a complaint',
    );
    assert.equal(checkAnswer({ type: 'error', error: { code: 'bad_frame', message: 'm' } }, undefined), undefined);
    assert.deepEqual(expectationOf(fuzzCase('bad utf8', Buffer.from([0xff]))), { kind: 'close', code: 1007 });
    assert.deepEqual(expectationOf(fuzzCase('big', 'a'.repeat(MAX_PAYLOAD + 1))), { kind: 'close', code: 1009 });
    assert.deepEqual(expectationOf(fuzzCase('binary with id', Buffer.from('{"type":"ping","id":1}'), true)), {
      kind: 'answer',
      replyId: undefined,
    });
  });
});
