/**
 * Recovery (PROTOCOL.md "Resume" and "Offsets and epochs"): a client that comes back with the
 * positions it had gets every missed publication exactly once, in offset order, before anything
 * live of that channel; when the gap cannot be filled it is told `recovered:false` instead.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResume, type StreamPosition } from '@switchboard/protocol';
import { SwitchboardNode, createEngine, resolveOptions, type History, type NodeOptionsInput } from '../src/index.js';
import { API_KEY, SECRET, TestClient, api, sleep, startNode, type Frame, type TestNode } from './helpers.js';

function welcomeOf(client: TestClient): Frame {
  const welcome = client.frames.find((f) => f.type === 'welcome');
  assert.ok(welcome, 'the session got a welcome');
  return welcome;
}

function positionOf(client: TestClient, channel: string): StreamPosition {
  const state = welcomeOf(client).subscriptions[channel] as StreamPosition | undefined;
  assert.ok(state, `welcome lists ${channel}`);
  return { epoch: state.epoch, offset: state.offset };
}

/** Publishes through the HTTP API and returns the accepted position. */
async function publish(node: TestNode, channel: string, data: unknown, from: string | null = null): Promise<StreamPosition> {
  const res = await api(node, 'POST', '/v1/publish', { channel, topic: 'update', data, from });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { epoch: res.body.epoch as string, offset: res.body.offset as number };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function offsets(frames: Frame[]): number[] {
  return frames.map((f) => f.offset as number);
}

/**
 * Publishes a marker and waits for it: everything published before it has been delivered by then
 * (the memory broker delivers synchronously with each publish, in publish order, and a session
 * writes a channel's replay before anything live of it). A test that asserts that nothing more
 * came asserts that the marker is the next message after the expected ones, instead of sleeping.
 */
async function barrier(node: TestNode, client: TestClient, channel: string): Promise<Frame> {
  const marker = `marker-${Math.random()}`;
  await publish(node, channel, { marker });
  return client.next((f) => f.type === 'message' && f.channel === channel && f.data?.marker === marker);
}

const resumeQuery = (positions: Record<string, StreamPosition>) => `&resume=${encodeResume(positions)}`;

/**
 * History with the latency of a remote store: reads wait a little before looking, so publications
 * keep arriving live between the moment a session joins a channel and the moment its history is
 * read. The memory engine answers within one microtask chain and never opens that window.
 */
class LaggyHistory implements History {
  constructor(
    private readonly inner: History,
    private readonly delayMs: number,
  ) {}

  get ready(): boolean {
    return this.inner.ready;
  }

  append(...args: Parameters<History['append']>) {
    return this.inner.append(...args);
  }

  appendOnce(...args: Parameters<History['appendOnce']>) {
    return this.inner.appendOnce(...args);
  }

  async position(channel: string) {
    await sleep(this.delayMs);
    return this.inner.position(channel);
  }

  async read(channel: string, since: number, limit: number) {
    await sleep(this.delayMs);
    return this.inner.read(channel, since, limit);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A real node whose history engine answers reads after `delayMs`. */
async function startLaggyNode(delayMs: number, input: NodeOptionsInput = {}): Promise<TestNode> {
  const options = resolveOptions({ port: 0, jwtSecret: SECRET, apiKey: API_KEY, logLevel: 'silent', nodeId: 'n-laggy', ...input });
  const engine = createEngine(options);
  const node = new SwitchboardNode(options, { engine: { ...engine, history: new LaggyHistory(engine.history, delayMs) } });
  const { url } = await node.start();
  return { node, url, wsUrl: url.replace(/^http/, 'ws') + options.wsPath, logs: [], stop: () => node.stop() };
}

/**
 * A publisher keeps publishing to `group:<group>` while a client resumes it: the client must end
 * up with exactly offsets since+1..last, in order, whatever was replayed and whatever was live.
 */
async function resumeWhilePublishing(node: TestNode, open: TestClient[], group: string): Promise<void> {
  const channel = `group:${group}`;
  const claims = { groups: [group] };
  const publisher = await TestClient.connect(node, `${group}-pub`, claims);
  open.push(publisher);
  const first = await TestClient.connect(node, `${group}-sub`, claims);
  open.push(first);
  for (let i = 0; i < 20; i++) await publish(node, channel, { n: `missed-${i}` });
  await first.waitMessages(20, channel);
  const since = { epoch: positionOf(first, channel).epoch, offset: 5 }; // pretend it missed 6..20 as well
  await first.close();
  for (let i = 0; i < 30; i++) await publish(node, channel, { n: `away-${i}` });

  let stop = false;
  let sent = 0;
  const replies: Promise<Frame>[] = [];
  const loop = (async () => {
    while (!stop && sent < 2000) {
      replies.push(publisher.request({ type: 'publish', channel, topic: 'update', data: { n: `live-${sent}` }, id: `p${sent}` }, 10_000));
      sent++;
      if (sent % 4 === 0) await sleep(1);
    }
  })();
  try {
    while (sent < 10) await sleep(1);
    const back = await TestClient.connect(node, `${group}-sub`, claims, resumeQuery({ [channel]: since }));
    open.push(back);
    const sentAtWelcome = sent;
    while (sent < sentAtWelcome + 40 && !stop && sent < 2000) await sleep(1);
    stop = true;
    await loop;

    const results = await Promise.all(replies);
    assert.ok(
      results.every((r) => r.ok === true),
      'every publish was accepted',
    );
    const last = Math.max(...results.map((r) => r.offset as number));
    assert.equal(last, 50 + sent);

    const state = welcomeOf(back).subscriptions[channel];
    assert.equal(state.recovered, true, JSON.stringify({ state, since }));
    assert.equal(state.epoch, since.epoch);
    assert.ok(state.offset >= 50 && state.offset <= last, `welcome offset ${state.offset} is within the published range`);

    await back.waitMessages(last - since.offset, channel, 10_000);
    const marker = await barrier(node, back, channel);
    assert.equal(marker.offset, last + 1);
    assert.deepEqual(
      offsets(back.messages(channel)),
      range(since.offset + 1, last + 1),
      'exactly since+1..last, in order, no duplicates, then the marker',
    );
  } finally {
    stop = true;
    await loop;
  }
}

describe('resume on connect', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  // Generous limits so the concurrent publisher can go as fast as it likes and still be recoverable.
  before(
    async () =>
      (node = await startNode({ rateLimitPerSecond: 10_000, rateLimitBurst: 10_000, historySize: 10_000, maxRecoveryMessages: 10_000 })),
  );
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  async function connect(user: string, claims: Record<string, unknown> = {}, query = ''): Promise<TestClient> {
    const client = await TestClient.connect(node, user, claims, query);
    open.push(client);
    return client;
  }

  it('replays every missed message of each resumed channel exactly once, in order, before live ones', async () => {
    const claims = { groups: ['ops1'] };
    const first = await connect('alice1', claims);
    // Something published while connected, so the resumed offsets are not simply 0.
    await publish(node, 'group:ops1', { n: 'before' });
    await first.next((f) => f.type === 'message' && f.channel === 'group:ops1');
    const positions = { 'user:alice1': positionOf(first, 'user:alice1'), 'group:ops1': { ...positionOf(first, 'group:ops1'), offset: 1 } };
    await first.close();

    for (let i = 0; i < 30; i++) {
      await publish(node, 'user:alice1', { n: i }, 'bob');
      await publish(node, 'group:ops1', { n: i });
    }

    const back = await connect('alice1', claims, resumeQuery(positions));
    const subs = welcomeOf(back).subscriptions;
    assert.deepEqual(subs['user:alice1'], { ...positions['user:alice1'], offset: positions['user:alice1'].offset + 30, recovered: true });
    assert.deepEqual(subs['group:ops1'], { epoch: positions['group:ops1'].epoch, offset: 31, recovered: true });
    assert.equal('recovered' in subs.broadcast, false, 'recovered is only set for channels named in resume');

    const live = await publish(node, 'group:ops1', { n: 'live' });
    await back.waitMessages(31, 'group:ops1');
    await back.waitMessages(30, 'user:alice1');
    const userMarker = await barrier(node, back, 'user:alice1');
    const groupMarker = await barrier(node, back, 'group:ops1');

    const user = back.messages('user:alice1');
    assert.equal(user.pop(), userMarker, 'the marker is the next message after the replay');
    assert.deepEqual(offsets(user), range(positions['user:alice1'].offset + 1, positions['user:alice1'].offset + 30));
    assert.deepEqual(
      user.map((m) => m.data.n),
      range(0, 29),
    );
    assert.ok(user.every((m) => m.from === 'bob' && m.topic === 'update' && m.epoch === positions['user:alice1'].epoch));

    const group = back.messages('group:ops1');
    assert.equal(group.pop(), groupMarker, 'the marker is the next message after the live one');
    assert.deepEqual(offsets(group), range(2, 32), 'offsets 2..31 replayed, then the live 32, none twice');
    assert.deepEqual(
      group.slice(0, 30).map((m) => m.data.n),
      range(0, 29),
    );
    assert.deepEqual(group.at(-1)?.data, { n: 'live' });
    assert.equal(live.offset, 32);
  });

  it('delivers messages published during the replay exactly once and in order', async () => {
    await resumeWhilePublishing(node, open, 'race1');
  });

  it('answers recovered:false and replays nothing when the epoch is wrong', async () => {
    const claims = { groups: ['epochs'] };
    const first = await connect('alice3', claims);
    const pos = positionOf(first, 'group:epochs');
    await first.close();
    for (let i = 0; i < 5; i++) await publish(node, 'group:epochs', { n: i });

    const back = await connect('alice3', claims, resumeQuery({ 'group:epochs': { epoch: 'not-the-epoch', offset: pos.offset } }));
    assert.deepEqual(welcomeOf(back).subscriptions['group:epochs'], { epoch: pos.epoch, offset: pos.offset + 5, recovered: false });
    const marker = await barrier(node, back, 'group:epochs');
    assert.deepEqual(back.messages('group:epochs'), [marker], 'only the live message, nothing replayed');
    assert.equal(marker.offset, pos.offset + 6);
  });

  it('ignores a resumed channel the user may not subscribe to', async () => {
    const secret = await publish(node, 'group:secret', { n: 0 });
    const other = await publish(node, 'user:bob4', { n: 0 });
    const client = await connect(
      'alice4',
      {},
      resumeQuery({ 'group:secret': { ...secret, offset: 0 }, 'user:bob4': { ...other, offset: 0 } }),
    );
    assert.deepEqual(Object.keys(welcomeOf(client).subscriptions).sort(), ['broadcast', 'user:alice4']);

    await publish(node, 'group:secret', { n: 1 });
    await publish(node, 'user:bob4', { n: 1 });
    // On another channel: the memory broker keeps publish order across channels, so anything of
    // the two publishes above would have reached the client before this marker.
    await barrier(node, client, 'user:alice4');
    assert.deepEqual(
      client.frames.filter((f) => f.channel === 'group:secret' || f.channel === 'user:bob4'),
      [],
      'nothing of the forbidden channels, neither replayed nor live',
    );
    const reply = await client.request({ type: 'unsubscribe', channel: 'group:secret' });
    assert.equal(reply.error?.code, 'not_found', 'the session is not subscribed to the forbidden channel');
  });

  for (const [label, value] of [
    ['not base64url', 'not*base64url!'],
    ['base64url of something that is not JSON', Buffer.from('hello, world').toString('base64url')],
    ['base64url of JSON that is not an object', Buffer.from('[1,2]').toString('base64url')],
  ] as const) {
    it(`welcomes the session and sends an error frame bad_frame for a resume that is ${label}`, async () => {
      const client = await connect('alice5', {}, `&resume=${encodeURIComponent(value)}`);
      const welcome = welcomeOf(client);
      assert.deepEqual(Object.keys(welcome.subscriptions).sort(), ['broadcast', 'user:alice5']);
      assert.ok(
        Object.values(welcome.subscriptions).every((s) => !('recovered' in (s as object))),
        'nothing was recovered',
      );
      const error = await client.next((f) => f.type === 'error');
      assert.equal(error.error.code, 'bad_frame');
      assert.match(error.error.message, /resume/);
      const pong = await client.request({ type: 'ping' });
      assert.equal(pong.ok, true, 'the session stays open');
      await client.close();
    });
  }
});

describe('resume against a history store with latency', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  before(
    async () =>
      (node = await startLaggyNode(30, {
        rateLimitPerSecond: 10_000,
        rateLimitBurst: 10_000,
        historySize: 10_000,
        maxRecoveryMessages: 10_000,
      })),
  );
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('delivers messages published between joining and reading history exactly once and in order', async () => {
    await resumeWhilePublishing(node, open, 'race2');
  });

  it('delivers messages published while a subscribe with since reads history exactly once and in order', async () => {
    const channel = 'group:race3';
    const publisher = await TestClient.connect(node, 'race3-pub', { groups: ['race3'] });
    open.push(publisher);
    let epoch = '';
    for (let i = 0; i < 30; i++) epoch = (await publish(node, channel, { n: i })).epoch;
    const reader = await TestClient.connect(node, 'race3-sub', { channels: [channel] });
    open.push(reader);

    const replies: Promise<Frame>[] = [];
    for (let i = 0; i < 5; i++)
      replies.push(publisher.request({ type: 'publish', channel, topic: 'update', data: { n: `live-${i}` }, id: `a${i}` }));
    const subscribed = reader.request({ type: 'subscribe', channel, since: { epoch, offset: 10 }, id: 'sub' });
    // These land while the history read is in flight.
    for (let i = 5; i < 60; i++) {
      replies.push(publisher.request({ type: 'publish', channel, topic: 'update', data: { n: `live-${i}` }, id: `a${i}` }));
      if (i % 5 === 0) await sleep(1);
    }
    const reply = await subscribed;
    const last = Math.max(...(await Promise.all(replies)).map((r) => r.offset as number));
    assert.equal(last, 90);
    assert.equal(reply.ok, true);
    assert.equal(reply.recovered, true);

    await reader.waitMessages(last - 10, channel);
    const marker = await barrier(node, reader, channel);
    const got = reader.messages(channel);
    assert.equal(got.pop(), marker, 'the marker is the next message after the replay and the live ones');
    assert.deepEqual(offsets(got), range(11, last), 'exactly 11..last, in order, no duplicates');
    assert.ok(reader.frames.indexOf(reply) < reader.frames.indexOf(got[0]!), 'the reply comes before any message of the channel');
  });
});

describe('resume beyond the history window', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  before(async () => (node = await startNode({ historySize: 5 })));
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('answers recovered:false when the offset is older than the kept history, true at its edge', async () => {
    const claims = { groups: ['window'] };
    const first = await TestClient.connect(node, 'alice6', claims);
    open.push(first);
    const pos = positionOf(first, 'group:window');
    assert.equal(pos.offset, 0);
    await first.close();
    for (let i = 0; i < 20; i++) await publish(node, 'group:window', { n: i });

    const stale = await TestClient.connect(node, 'alice6', claims, resumeQuery({ 'group:window': pos }));
    open.push(stale);
    assert.deepEqual(welcomeOf(stale).subscriptions['group:window'], { epoch: pos.epoch, offset: 20, recovered: false });
    const marker = await barrier(node, stale, 'group:window');
    assert.deepEqual(stale.messages('group:window'), [marker], 'nothing replayed');
    await stale.close();

    // 17..21 are still kept, so resuming from 16 fills the gap.
    const edge = await TestClient.connect(node, 'alice6', claims, resumeQuery({ 'group:window': { epoch: pos.epoch, offset: 16 } }));
    open.push(edge);
    assert.deepEqual(welcomeOf(edge).subscriptions['group:window'], { epoch: pos.epoch, offset: 21, recovered: true });
    await edge.waitMessages(5, 'group:window');
    const edgeMarker = await barrier(node, edge, 'group:window');
    assert.equal(edgeMarker.offset, 22);
    assert.deepEqual(offsets(edge.messages('group:window')), range(17, 22), '17..21 replayed, then the marker');
  });
});

describe('resume past maxRecoveryMessages', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  before(async () => (node = await startNode({ maxRecoveryMessages: 10 })));
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('answers recovered:false for a gap over the limit and replays a gap of exactly the limit', async () => {
    const claims = { groups: ['big'] };
    const first = await TestClient.connect(node, 'alice7', claims);
    open.push(first);
    const { epoch } = positionOf(first, 'group:big');
    await first.close();
    for (let i = 0; i < 20; i++) await publish(node, 'group:big', { n: i });

    const over = await TestClient.connect(node, 'alice7', claims, resumeQuery({ 'group:big': { epoch, offset: 9 } }));
    open.push(over);
    assert.deepEqual(welcomeOf(over).subscriptions['group:big'], { epoch, offset: 20, recovered: false });
    const marker = await barrier(node, over, 'group:big');
    assert.deepEqual(over.messages('group:big'), [marker], 'an 11-message gap is not replayed');
    await over.close();

    const within = await TestClient.connect(node, 'alice7', claims, resumeQuery({ 'group:big': { epoch, offset: 11 } }));
    open.push(within);
    assert.deepEqual(welcomeOf(within).subscriptions['group:big'], { epoch, offset: 21, recovered: true });
    await within.waitMessages(10, 'group:big');
    const withinMarker = await barrier(node, within, 'group:big');
    assert.equal(withinMarker.offset, 22);
    assert.deepEqual(offsets(within.messages('group:big')), range(12, 22), '12..21 replayed, then the marker');
  });
});

describe('subscribe with since', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  before(async () => (node = await startNode()));
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('replies recovered:true with the latest position, then replays the missed messages in order', async () => {
    let epoch = '';
    for (let i = 1; i <= 10; i++) epoch = (await publish(node, 'group:news', { n: i })).epoch;
    const carol = await TestClient.connect(node, 'carol', { channels: ['group:news'] });
    open.push(carol);
    assert.equal('group:news' in welcomeOf(carol).subscriptions, false, 'a token channel is not auto-subscribed');

    const reply = await carol.request({ type: 'subscribe', channel: 'group:news', since: { epoch, offset: 4 }, id: 'sub' });
    assert.deepEqual(reply, { type: 'reply', id: 'sub', ok: true, channel: 'group:news', epoch, offset: 10, recovered: true });
    const replayed = await carol.waitMessages(6, 'group:news');
    assert.deepEqual(offsets(replayed), range(5, 10));
    assert.deepEqual(
      replayed.map((m) => m.data.n),
      range(5, 10),
    );
    assert.ok(carol.frames.indexOf(reply) < carol.frames.indexOf(replayed[0]!), 'the reply comes before the replay');

    const live = await barrier(node, carol, 'group:news');
    assert.equal(live.offset, 11);
    assert.deepEqual(offsets(carol.messages('group:news')), range(5, 11), 'nothing twice');
  });

  it('replies recovered:false and replays nothing for a wrong epoch', async () => {
    const { offset } = await publish(node, 'group:wire', { n: 1 });
    const dave = await TestClient.connect(node, 'dave', { channels: ['group:wire'] });
    open.push(dave);
    const reply = await dave.request({ type: 'subscribe', channel: 'group:wire', since: { epoch: 'stale', offset: 0 } });
    assert.equal(reply.ok, true);
    assert.equal(reply.recovered, false);
    assert.equal(reply.offset, offset);
    const marker = await barrier(node, dave, 'group:wire');
    assert.deepEqual(dave.messages('group:wire'), [marker]);
  });
});

describe('paged recovery with the default limits', () => {
  let node: TestNode;
  const open: TestClient[] = [];
  before(async () => (node = await startNode()));
  after(async () => {
    await Promise.all(open.map((c) => c.close()));
    await node.stop();
  });

  it('replays 2,500 messages of 2 KB (5 MB, five times the outbound limit) in pages: all of them, once, in order, then live', async () => {
    const claims = { groups: ['paged'] };
    const first = await TestClient.connect(node, 'pager', claims);
    const pos = positionOf(first, 'group:paged');
    await first.close();
    const text = 'x'.repeat(2048);
    for (let i = 0; i < 2500; i += 50)
      await Promise.all(Array.from({ length: 50 }, (_, j) => publish(node, 'group:paged', { n: i + j, text })));

    const back = await TestClient.connect(node, 'pager', claims, resumeQuery({ 'group:paged': pos }));
    open.push(back);
    assert.deepEqual(welcomeOf(back).subscriptions['group:paged'], { epoch: pos.epoch, offset: 2500, recovered: true });
    await back.waitMessages(2500, 'group:paged', 20_000);
    const marker = await barrier(node, back, 'group:paged');
    assert.deepEqual(offsets(back.messages('group:paged')), range(1, 2501), 'every offset once, in order, then the marker');
    assert.equal(marker.offset, 2501);
    assert.equal(back.closeCode, undefined, 'not cut as a slow consumer');
  });
});
