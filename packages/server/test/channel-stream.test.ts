/**
 * The exactly-once channel stream (src/session/channel-stream.ts) without a socket: table tests of
 * live offsets arriving in order, repeated, out of order, with a gap (after 0 too), across an
 * epoch change, while attaching and while repairing, and of the buffer's bound.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StreamPosition } from '@switchboard/protocol';
import { ChannelStream } from '../src/session/channel-stream.js';
import { messageFrame, type Publication } from '../src/publication.js';

const CHANNEL = 'group:t';

function pub(epoch: string, offset: number): Publication {
  return { channel: CHANNEL, epoch, offset, from: null, topic: 't', data: offset, ts: 1 };
}
const frame = (epoch: string, offset: number) => Buffer.from(messageFrame(pub(epoch, offset)));

/** A stream whose history holds `history` and whose writes are recorded as `epoch:offset`. */
function harness(history: Publication[] = [], maxPending = 100) {
  const written: string[] = [];
  const repairs: StreamPosition[] = [];
  const pages: StreamPosition[] = [];
  let overflows = 0;
  let gaps = 0;
  let release: (() => void) | undefined;
  let failRepair = false;
  let holdRepair = false;
  /** The socket is congested once this many frames are written, until `room()` is called. */
  let roomFor = Infinity;
  let wake: (() => void) | undefined;
  const stream = new ChannelStream(
    CHANNEL,
    {
      writeMessage: (f) => {
        const m = JSON.parse(f.toString()) as { epoch: string; offset: number };
        written.push(`${m.epoch}:${m.offset}`);
      },
      repair: async (channel, since) => {
        assert.equal(channel, CHANNEL);
        repairs.push(since);
        if (holdRepair) await new Promise<void>((r) => (release = r));
        if (failRepair) throw new Error('history down');
        return history.filter((p) => p.epoch === since.epoch && p.offset > since.offset);
      },
      nextPage: async (channel, since) => {
        assert.equal(channel, CHANNEL);
        pages.push(since);
        const after = history.filter((p) => p.epoch === since.epoch && p.offset > since.offset);
        return { publications: after.slice(0, 2), more: after.length > 2 };
      },
      overflow: () => void overflows++,
      gap: () => void gaps++,
      congested: () => written.length >= roomFor,
      roomy: () => new Promise<void>((r) => (wake = r)),
    },
    maxPending,
  );
  return {
    stream,
    written,
    repairs,
    pages,
    get overflows() {
      return overflows;
    },
    get gaps() {
      return gaps;
    },
    failRepairs: () => void (failRepair = true),
    congestAfter: (n: number) => void (roomFor = n),
    room: (n = Infinity) => {
      roomFor = n;
      wake?.();
    },
    holdRepairs: () => void (holdRepair = true),
    release: () => release?.(),
    live: (...offsets: (number | [string, number])[]) => {
      for (const o of offsets) {
        const [epoch, offset] = typeof o === 'number' ? ['e1', o] : o;
        stream.live(epoch, offset, frame(epoch, offset));
      }
    },
  };
}

const settle = () => new Promise((r) => setImmediate(r));
const e1 = (...offsets: number[]) => offsets.map((o) => `e1:${o}`);

describe('ChannelStream', () => {
  it('buffers live publications until drained, then writes the replay, then the buffer, each offset once', () => {
    const h = harness();
    h.live(4, 5, 6);
    assert.deepEqual(h.written, [], 'nothing before the drain');
    h.stream.begin({ epoch: 'e1', offset: 2 });
    h.stream.drain([pub('e1', 3), pub('e1', 4), pub('e1', 5)]);
    assert.deepEqual(h.written, e1(3, 4, 5, 6), 'replay and buffer overlapped on 4 and 5');
    assert.deepEqual(h.stream.position, { epoch: 'e1', offset: 6 });
  });

  it('pauses a replay while the socket is congested, buffering live publications, and goes on when it has room', async () => {
    const h = harness();
    h.congestAfter(2);
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([pub('e1', 1), pub('e1', 2), pub('e1', 3), pub('e1', 4)]);
    assert.deepEqual(h.written, e1(1, 2), 'stopped at the congestion');
    h.live(5);
    assert.deepEqual(h.written, e1(1, 2), 'a live publication waits behind the replay');
    h.room(3);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.written, e1(1, 2, 3), 'one more, then congested again');
    h.room();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.written, e1(1, 2, 3, 4, 5), 'the rest of the replay, then the buffer');
    h.live(6);
    assert.deepEqual(h.written, e1(1, 2, 3, 4, 5, 6), 'live again');
  });

  it('catch-up: a stream behind the latest position fetches what it missed; one at it, or on an empty new epoch, does nothing', async () => {
    const h = harness([pub('e1', 1), pub('e1', 2), pub('e1', 3)]);
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([]);
    h.live(1);
    h.stream.catchUp({ epoch: 'e1', offset: 1 });
    h.stream.catchUp({ epoch: 'e9', offset: 0 });
    await settle();
    assert.deepEqual(h.repairs, [], 'nothing to fetch');
    h.stream.catchUp({ epoch: 'e1', offset: 3 });
    h.live(3); // arrives while the catch-up reads: buffered, written once after
    await settle();
    assert.deepEqual(h.repairs, [{ epoch: 'e1', offset: 1 }]);
    assert.deepEqual(h.written, e1(1, 2, 3));
    assert.equal(h.gaps, 1);
    h.live(4);
    assert.deepEqual(h.written, e1(1, 2, 3, 4), 'live again');
  });

  it('catch-up on a new epoch (history lost while the broker was away) reads that epoch from its start', async () => {
    const h = harness([pub('e1', 1), pub('e2', 1), pub('e2', 2)]);
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([]);
    h.live(1);
    h.stream.catchUp({ epoch: 'e2', offset: 2 });
    await settle();
    assert.deepEqual(h.repairs, [{ epoch: 'e2', offset: 0 }]);
    assert.deepEqual(h.written, ['e1:1', 'e2:1', 'e2:2']);
    h.live(['e2', 2], ['e2', 3]);
    assert.deepEqual(h.written, ['e1:1', 'e2:1', 'e2:2', 'e2:3'], 'live again, the repeat dropped');
  });

  it('catch-up: while a replay is still going on, it is left to that replay', async () => {
    const h = harness([pub('e1', 1), pub('e1', 2)]);
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.catchUp({ epoch: 'e1', offset: 2 }); // still attaching: pending
    await settle();
    assert.deepEqual(h.repairs, []);
    h.stream.drain([pub('e1', 1), pub('e1', 2)]);
    assert.deepEqual(h.written, e1(1, 2));
  });

  const cases: {
    name: string;
    live: (number | [string, number])[];
    history?: (number | [string, number])[];
    want: string[];
    gaps?: number;
  }[] = [
    { name: 'in order', live: [1, 2, 3], want: e1(1, 2, 3) },
    { name: 'a repeat (a broker redelivery) is dropped', live: [1, 2, 2, 1, 3], want: e1(1, 2, 3) },
    { name: 'an older offset arriving late is dropped', live: [1, 3, 2], history: [2], want: e1(1, 2, 3), gaps: 1 },
    { name: 'a gap after n is filled from history first', live: [1, 4], history: [2, 3], want: e1(1, 2, 3, 4), gaps: 1 },
    { name: 'a gap right after offset 0 is filled too', live: [3], history: [1, 2], want: e1(1, 2, 3), gaps: 1 },
    { name: 'a new epoch starts again from its first offset', live: [1, 2, ['e2', 1], ['e2', 2]], want: ['e1:1', 'e1:2', 'e2:1', 'e2:2'] },
    {
      name: 'an old epoch after the new one is written, after looking in history for that epoch',
      live: [1, ['e2', 1], 2],
      want: ['e1:1', 'e2:1', 'e1:2'],
      gaps: 1,
    },
    {
      // Redis restarted empty, and the first publications after it came while the node's
      // subscription was still coming back: they are in the new epoch's history.
      name: 'a new epoch whose first offsets the broker lost is filled from its start',
      live: [1, ['e2', 3]],
      history: [
        ['e2', 1],
        ['e2', 2],
      ],
      want: ['e1:1', 'e2:1', 'e2:2', 'e2:3'],
      gaps: 1,
    },
  ];
  for (const c of cases) {
    it(`live: ${c.name}`, async () => {
      const h = harness((c.history ?? []).map((o) => (typeof o === 'number' ? pub('e1', o) : pub(...o))));
      h.stream.begin({ epoch: 'e1', offset: 0 });
      h.stream.drain([]);
      h.live(...c.live);
      await settle();
      assert.deepEqual(h.written, c.want);
      assert.equal(h.gaps, c.gaps ?? 0);
    });
  }

  it('catches up page after page (an inbox longer than a page), holding live ones until the last page', async () => {
    const h = harness([1, 2, 3, 4, 5, 6, 7].map((o) => pub('e1', o)));
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([pub('e1', 1), pub('e1', 2)], true);
    h.live(8, 6);
    assert.deepEqual(h.written, e1(1, 2), 'the first page, then the rest is read');
    await settle();
    await settle();
    await settle();
    assert.deepEqual(h.written, e1(1, 2, 3, 4, 5, 6, 7, 8), 'every page in order, then the live ones not yet written');
    assert.deepEqual(
      h.pages.map((p) => p.offset),
      [2, 4, 6],
      'each page read after the last one written',
    );
    h.live(9);
    assert.deepEqual(h.written.at(-1), 'e1:9', 'live after the catch-up');
  });

  it('buffers what arrives during a repair, then writes in order, once', async () => {
    const h = harness([pub('e1', 2), pub('e1', 3)]);
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([]);
    h.holdRepairs();
    h.live(1, 4, 3, 5);
    assert.deepEqual(h.written, e1(1), 'held while history is read');
    assert.deepEqual(h.repairs, [{ epoch: 'e1', offset: 1 }]);
    h.release();
    await settle();
    assert.deepEqual(h.written, e1(1, 2, 3, 4, 5));
  });

  it('goes on with what arrived when history cannot be read (the hole stays, the stream does not stall)', async () => {
    const h = harness();
    h.stream.begin({ epoch: 'e1', offset: 0 });
    h.stream.drain([]);
    h.failRepairs();
    h.live(1, 3);
    await settle();
    h.live(4);
    assert.deepEqual(h.written, e1(1, 3, 4));
  });

  it('calls overflow when the buffer passes its bound', () => {
    const h = harness([], 3);
    h.live(1, 2, 3);
    assert.equal(h.overflows, 0);
    h.live(4);
    assert.equal(h.overflows, 1);
  });

  it('writes nothing after stop, not even a repair that was in flight', async () => {
    const h = harness([pub('e1', 2)]);
    h.stream.begin({ epoch: 'e1', offset: 1 });
    h.stream.drain([]);
    h.holdRepairs();
    h.live(3);
    h.stream.stop();
    h.release();
    await settle();
    h.live(4);
    assert.deepEqual(h.written, []);
  });
});
