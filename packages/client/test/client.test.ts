/**
 * The SDK against a real in-process node: connecting, topic and channel listeners, presence,
 * send/publish results and errors, explicit subscriptions, typed topics, and a clean stop.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Switchboard, SwitchboardError, type Message } from '../src/index.js';
import { TestClient, api, startNode, token, type TestNode } from '../../server/test/helpers.js';
import { TcpProxy, closeClients, connectClient, createClient, nextEvent, sleep, until, waitState, within } from './helpers.js';

/** Rejects unless `promise` rejects with a SwitchboardError of `code` (and `message`, when given). */
async function rejectsWith(promise: Promise<unknown>, code: string, message?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof SwitchboardError, `not a SwitchboardError: ${String(err)}`);
    assert.equal(err.code, code);
    if (message !== undefined) assert.equal(err.message, message);
    return true;
  });
}

/**
 * Runs test/fixtures/<name> with tsx in a child process; it must exit by itself within 10 s.
 * Resolves with its exit code and output.
 */
async function runFixture(name: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const script = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const code = await within(exited, `${name} to exit by itself (stdout: ${out}; stderr: ${err})`, 10_000);
    return { code, out, err };
  } finally {
    child.kill('SIGKILL');
  }
}

/** The fields of a message the app sees, for comparison with a raw frame. */
const view = (m: Message | Record<string, unknown>) => ({
  channel: m.channel,
  epoch: m.epoch,
  offset: m.offset,
  from: m.from,
  topic: m.topic,
  data: m.data,
});

describe('Switchboard client on a node', () => {
  let node: TestNode;
  const raws: TestClient[] = [];
  before(async () => (node = await startNode()));
  after(async () => {
    closeClients();
    await Promise.all(raws.map((c) => c.close()));
    await node.stop();
  });

  it('connects: state connecting → connected, connecting/connected events, welcome as client.session', async () => {
    const { client, log } = createClient(node.wsUrl, await token('alice1', { groups: ['ops1'] }));
    assert.equal(client.state, 'disconnected', 'connects in a microtask, so listeners added now see everything');
    const welcome = await nextEvent(client, 'connected');
    assert.deepEqual(
      log.filter((e) => e.name === 'state').map((e) => e.payload),
      [
        { state: 'connecting', previous: 'disconnected' },
        { state: 'connected', previous: 'connecting' },
      ],
    );
    assert.deepEqual(log.find((e) => e.name === 'connecting')?.payload, { attempt: 0 });
    assert.equal(client.state, 'connected');
    assert.equal(client.session, welcome);
    assert.equal(welcome.user, 'alice1');
    assert.equal(welcome.node, 'n-test');
    assert.equal(welcome.heartbeat, 25);
    assert.deepEqual(Object.keys(welcome.subscriptions).sort(), ['broadcast', 'group:ops1', 'user:alice1']);
    assert.deepEqual(client.position('group:ops1'), { epoch: welcome.subscriptions['group:ops1']!.epoch, offset: 0 });
  });

  it('client.on(topic) gets exactly the messages a raw socket doing bus.emit(frame.topic, frame) gets for that topic', async () => {
    const claims = { groups: ['ops2'] };
    const { client } = await connectClient(node.wsUrl, await token('alice2', claims));
    const raw = await TestClient.connect(node, 'alice2', claims);
    raws.push(raw);
    const seen: Message[] = [];
    client.on('alert', (m) => seen.push(m));
    const { client: bob } = await connectClient(node.wsUrl, await token('bob2', claims));
    await api(node, 'POST', '/v1/publish', { channel: 'user:alice2', topic: 'alert', data: { n: 1 } });
    await bob.publish('group:ops2', 'alert', { n: 2 });
    await bob.publish('group:ops2', 'other', { n: 3 });
    await bob.send('alice2', 'alert', { n: 4 });
    await api(node, 'POST', '/v1/publish', { channel: 'broadcast', topic: 'alert', data: { n: 5 }, from: 'ops-bot' });
    await api(node, 'POST', '/v1/publish', { channel: 'user:alice2', topic: 'done', data: null });
    await raw.next((f) => f.type === 'message' && f.topic === 'done');
    await until(() => client.position('user:alice2')?.offset === 3 || undefined, 'the SDK to see the last message');

    const bus = raw.messages().filter((f) => f.topic === 'alert');
    const byPlace = (a: { channel: unknown; offset: unknown }, b: { channel: unknown; offset: unknown }) =>
      `${a.channel}${a.offset}`.localeCompare(`${b.channel}${b.offset}`);
    assert.equal(seen.length, 4);
    assert.deepEqual(seen.map(view).sort(byPlace), bus.map(view).sort(byPlace));
    assert.deepEqual(seen.map((m) => (m.data as { n: number }).n).sort(), [1, 2, 4, 5]);
    assert.deepEqual(seen.find((m) => m.channel === 'broadcast')?.from, 'ops-bot');
    for (const m of seen) assert.equal(typeof m.ts, 'number');
  });

  it('channel(): on("message") gets only that channel; presence(); on("join"/"leave") per user', async () => {
    const { client: alice } = await connectClient(node.wsUrl, await token('alice3', { groups: ['ops3'] }));
    const ops = alice.channel('group:ops3');
    assert.equal(alice.channel('group:ops3'), ops, 'one subscription object per channel');
    const got: Message[] = [];
    const joins: string[] = [];
    const leaves: string[] = [];
    ops.on('message', (m) => got.push(m));
    ops.on('join', (p) => joins.push(p.user));
    ops.on('leave', (p) => leaves.push(p.user));

    const { client: bob } = await connectClient(node.wsUrl, await token('bob3', { groups: ['ops3'] }));
    await until(() => joins.includes('bob3'), 'bob3 join');
    const users = (await ops.presence()).sort((a, b) => a.user.localeCompare(b.user));
    assert.deepEqual(users, [
      { user: 'alice3', sessions: 1, nodes: ['n-test'] },
      { user: 'bob3', sessions: 1, nodes: ['n-test'] },
    ]);

    await bob.send('alice3', 'note', 'not for the channel');
    const published = await bob.channel('group:ops3').publish('note', { text: 'for ops' });
    await until(() => got.length > 0, 'the channel message');
    assert.deepEqual(got.map(view), [
      { channel: 'group:ops3', epoch: published.epoch, offset: published.offset, from: 'bob3', topic: 'note', data: { text: 'for ops' } },
    ]);

    bob.disconnect();
    await until(() => leaves.includes('bob3'), 'bob3 leave');
    assert.deepEqual(
      joins.filter((u) => u === 'bob3'),
      ['bob3'],
    );
    assert.deepEqual(leaves, ['bob3']);
    assert.deepEqual(
      (await ops.presence()).map((u) => u.user),
      ['alice3'],
    );
  });

  it('send and publish resolve with the {epoch, offset} the recipient sees', async () => {
    const { client: alice } = await connectClient(node.wsUrl, await token('alice4', { groups: ['ops4'] }));
    const { client: bob } = await connectClient(node.wsUrl, await token('bob4', { groups: ['ops4'] }));
    const got: Message[] = [];
    bob.on('chat', (m) => got.push(m));

    const first = await alice.send('bob4', 'chat', { text: 'one' });
    const second = await alice.send('bob4', 'chat', { text: 'two' });
    const pub = await alice.publish('group:ops4', 'chat', { text: 'three' });
    assert.deepEqual(Object.keys(first).sort(), ['epoch', 'offset'], 'no duplicate flag on a first delivery');
    assert.equal(second.offset, first.offset + 1);
    assert.equal(second.epoch, first.epoch);
    await until(() => got.length === 3, 'three messages at bob');
    assert.deepEqual(got.map(view), [
      { channel: 'user:bob4', ...first, from: 'alice4', topic: 'chat', data: { text: 'one' } },
      { channel: 'user:bob4', ...second, from: 'alice4', topic: 'chat', data: { text: 'two' } },
      { channel: 'group:ops4', ...pub, from: 'alice4', topic: 'chat', data: { text: 'three' } },
    ]);
  });

  it('a forbidden publish rejects with SwitchboardError forbidden and the server message; the client stays connected', async () => {
    const { client } = await connectClient(node.wsUrl, await token('alice5', { groups: ['ops5'] }));
    await rejectsWith(client.publish('group:secret', 't', {}), 'forbidden', 'not a member of group:secret');
    await rejectsWith(client.publish('broadcast', 't', {}), 'forbidden', 'publishing to broadcast needs role admin');
    assert.equal(client.state, 'connected');
    assert.equal(typeof (await client.publish('group:ops5', 't', {})).offset, 'number');
  });

  it('subscribe() joins a channel of the token channels claim; a channel outside it is forbidden', async () => {
    const { client } = await connectClient(node.wsUrl, await token('alice6', { channels: ['group:news6'] }));
    const news = client.channel('group:news6');
    const got: Message[] = [];
    news.on('message', (m) => got.push(m));
    await api(node, 'POST', '/v1/publish', { channel: 'group:news6', topic: 'story', data: 'before' });
    await news.subscribe();
    const after = await api(node, 'POST', '/v1/publish', { channel: 'group:news6', topic: 'story', data: 'after' });
    await until(() => got.length > 0, 'the news message');
    assert.deepEqual(
      got.map((m) => [m.data, m.offset]),
      [['after', after.body.offset]],
      'only what was published after subscribing',
    );
    assert.deepEqual(client.position('group:news6'), { epoch: after.body.epoch, offset: after.body.offset });

    await rejectsWith(client.channel('group:other6').subscribe(), 'forbidden');
  });

  it('unsubscribe() stops delivery and forgets the position', async () => {
    const { client } = await connectClient(node.wsUrl, await token('alice7', { channels: ['group:news7'] }));
    const news = client.channel('group:news7');
    const got: unknown[] = [];
    news.on('message', (m) => got.push(m.data));
    const mine: unknown[] = [];
    client.on('marker', (m) => mine.push(m.data));
    await news.subscribe();
    await api(node, 'POST', '/v1/publish', { channel: 'group:news7', topic: 'story', data: 1 });
    await until(() => got.length === 1, 'the first story');
    await news.unsubscribe();
    assert.equal(client.position('group:news7'), undefined);
    await api(node, 'POST', '/v1/publish', { channel: 'group:news7', topic: 'story', data: 2 });
    await api(node, 'POST', '/v1/publish', { channel: 'user:alice7', topic: 'marker', data: 'm' });
    await until(() => mine.length === 1, 'the marker');
    await sleep(100);
    assert.deepEqual(got, [1]);
  });

  it('typed topics: payloads are checked at compile time', async () => {
    type Topics = { chat: { text: string }; count: number };
    const { client } = await connectClient<Topics>(node.wsUrl, await token('alice8'));
    const texts: string[] = [];
    client.on('chat', (m) => texts.push(m.data.text)); // m.data is { text: string }
    await client.send('alice8', 'chat', { text: 'typed' });
    await client.send('alice8', 'count', 3);
    await until(() => texts.length === 1, 'the typed message');
    assert.deepEqual(texts, ['typed']);

    // Never called: these lines exist for `tsc -p tsconfig.test.json`, which fails when a line
    // marked as an expected error compiles.
    const typeChecks = (c: Switchboard<Topics>) => {
      // @ts-expect-error text must be a string
      void c.send('bob', 'chat', { text: 1 });
      // @ts-expect-error count carries a number
      void c.publish('group:x', 'count', 'three');
      // @ts-expect-error unknown topic
      void c.send('bob', 'nope', {});
      // @ts-expect-error the payload of chat has no `n`
      c.on('chat', (m) => m.data.n);
    };
    void typeChecks;
  });

  it('disconnect(): state closed, closed event, queued sends and later sends reject with closed; connect() works again', async () => {
    const { client, log } = createClient(node.wsUrl, await token('alice9'), { autoConnect: false });
    assert.equal(client.state, 'disconnected');
    const queued = client.send('alice9', 't', 'queued while never connected');
    client.disconnect();
    await rejectsWith(queued, 'closed', 'client disconnected');
    await rejectsWith(client.send('alice9', 't', 'after'), 'closed', 'client is closed: call connect() first');
    assert.equal(client.state, 'closed');
    assert.deepEqual(log.find((e) => e.name === 'closed')?.payload, { code: 1000, reason: 'client disconnect' });

    const connected = nextEvent(client, 'connected');
    client.connect();
    await connected;
    const r = await client.send('alice9', 't', 'works again');
    assert.equal(r.offset, 1, 'the queued send was never delivered');
    client.disconnect();
    assert.equal(client.session, undefined);
    let online = true;
    for (let i = 0; i < 100 && online; i++) {
      online = (await api(node, 'GET', '/v1/users/alice9')).body.online as boolean;
      if (online) await sleep(50);
    }
    assert.equal(online, false, 'the server saw the socket close');
  });

  it('disconnect() while the socket is still opening does not crash the process', async () => {
    // Behind a blackholed proxy the upgrade never completes: the socket stays CONNECTING.
    const proxy = await TcpProxy.start(Number(new URL(node.url).port));
    try {
      proxy.blackhole();
      const { client } = createClient(proxy.wsUrl(), await token('alice10'));
      await until(() => proxy.connections === 1, 'the connection attempt');
      assert.equal(client.state, 'connecting');
      client.disconnect();
      assert.equal(client.state, 'closed');
      // ws reports the abort on a later tick; with no error listener left it would be uncaught.
      await sleep(100);
      await waitState(client, 'closed');
    } finally {
      await proxy.close();
    }
  });

  it('disconnect() then connect() while an async token is being fetched opens one socket, not two', async () => {
    // Each call's token is handed out by the test, so that both fetches end in the same tick.
    const fetches: ((t: string) => void)[] = [];
    const tokenFn = () => new Promise<string>((resolve) => fetches.push(resolve));
    const { client } = createClient(node.wsUrl, tokenFn);
    await until(() => fetches.length === 1, 'the first token fetch');
    client.disconnect();
    client.connect();
    assert.equal(fetches.length, 2, 'the new connect() fetched its own token');
    const fresh = await token('alice11');
    for (const resolve of fetches) resolve(fresh);
    await nextEvent(client, 'connected');
    await sleep(300); // room for a second socket's session to appear
    const user = await api(node, 'GET', '/v1/users/alice11');
    assert.equal(user.body.sessions.length, 1, JSON.stringify(user.body));
  });

  it('disconnect() while a token function is failing: the client stays closed', async () => {
    const tokenFn = async (): Promise<string> => {
      await sleep(100);
      throw new Error('identity provider down');
    };
    const { client, log } = createClient(node.wsUrl, tokenFn, { backoff: () => 0 });
    await waitState(client, 'connecting');
    client.disconnect();
    await sleep(300);
    assert.equal(client.state, 'closed');
    assert.deepEqual(
      log.filter((e) => e.name === 'error' || e.name === 'disconnected' || e.name === 'connecting').length,
      1,
      'only the first connecting',
    );
  });

  it('a throwing client.on(topic) listener costs the other listeners nothing, even within one batched frame', async () => {
    let epoch = '';
    for (let n = 1; n <= 5; n++)
      epoch = (await api(node, 'POST', '/v1/publish', { channel: 'user:thrower', topic: 'tick', data: n })).body.epoch as string;
    const { code, out, err } = await runFixture('throwing-listener.ts', [node.wsUrl, await token('thrower'), epoch]);
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), { seen: [1, 2, 3, 4, 5], viaChannel: [1, 2, 3, 4, 5], uncaught: 5, position: { epoch, offset: 5 } });
  });

  it('saves its positions once for a batched frame, and the store has the latest before the next task', async () => {
    let epoch = '';
    for (let n = 1; n <= 20; n++)
      epoch = (await api(node, 'POST', '/v1/publish', { channel: 'user:saver', topic: 'tick', data: n })).body.epoch as string;
    // A store that counts its saves, starting at offset 0: the node replays all 20 right after the
    // welcome, in one frame (as in the throwing-listener fixture).
    const saved: Record<string, { epoch: string; offset: number }>[] = [];
    const positions = {
      load: () => ({ 'user:saver': { epoch, offset: 0 } }),
      save: (p: Record<string, { epoch: string; offset: number }>) => void saved.push(structuredClone(p)),
    };
    const { client } = createClient(node.wsUrl, await token('saver'), { positions });
    const inStoreAtNextTask: number[] = [];
    client.on('tick', () => void setTimeout(() => inStoreAtNextTask.push(saved.at(-1)?.['user:saver']?.offset ?? -1)));
    await until(() => inStoreAtNextTask.length === 20, 'the 20 replayed ticks');
    assert.ok(saved.length <= 3, `${saved.length} saves for a welcome and 20 replayed messages`);
    assert.deepEqual(saved.at(-1)?.['user:saver'], { epoch, offset: 20 });
    assert.deepEqual(inStoreAtNextTask, Array(20).fill(20), 'saved before any later task ran');
  });

  it('after disconnect() no SDK timer or socket keeps a process alive', async () => {
    // Everything in the script takes well under a second; every SDK timer in it is 60 s.
    const { code, out, err } = await runFixture('exit-after-disconnect.ts', [node.wsUrl, await token('leaky'), 'ws://127.0.0.1:1/ws']);
    assert.equal(code, 0, err);
    assert.deepEqual(JSON.parse(out), {
      sentOffset: 1,
      inflight: 'closed',
      queued: 'closed',
      scheduled: 60_000,
      states: ['closed', 'closed', 'closed'],
    });
  });
});
