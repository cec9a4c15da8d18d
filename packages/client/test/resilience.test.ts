/**
 * The SDK when the network and the server misbehave, over real sockets: a TCP proxy cuts or
 * blackholes connections, the real CLI is SIGKILLed and restarted, the server closes with the
 * codes that mean "stop", "refresh the token" or "reconnect now". Checked each time: what the
 * app sees — every message once, in order per channel — and how the client reconnects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fullJitter, type Backoff } from '../src/index.js';
import { api, startNode, token, type TestNode } from '../../server/test/helpers.js';
import {
  Inbox,
  TcpProxy,
  closeClients,
  connectClient,
  createClient,
  freePort,
  nextEvent,
  publishHttp,
  sleep,
  spawnCliNode,
  until,
  waitState,
  within,
  type CliNode,
  type RecordedEvent,
} from './helpers.js';

const HEARTBEAT_MS = 300;
/** Quick retries keep the tests short; the backoff's own behaviour is unit-tested. */
const fast = fullJitter({ baseMs: 50, maxMs: 200 });

const portOf = (n: TestNode) => Number(new URL(n.url).port);
const names = (log: RecordedEvent[], name: RecordedEvent['name']) => log.filter((e) => e.name === name).map((e) => e.payload);

/** A backoff that records each call and answers a delay no test would wait for. */
function recordingBackoff(): Backoff & { calls: number[] } {
  const calls: number[] = [];
  return Object.assign(
    (attempt: number) => {
      calls.push(attempt);
      return 60_000;
    },
    { calls },
  );
}

/** Publishes `tick` messages numbered from `from` to each channel through the HTTP API, one at a time. */
async function publishTicks(baseUrl: string, channels: string[], from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) {
    for (const channel of channels) {
      const res = await publishHttp(baseUrl, { channel, topic: 'tick', data: n });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
  }
}

/**
 * Publishes numbered `tick`s to each channel every few ms until stopped; remembers which were
 * accepted (HTTP 200). Failures (server down) are counted, not thrown.
 */
function publisherLoop(baseUrl: string, channels: string[]) {
  const accepted = new Map<string, { n: number; epoch: string; offset: number }[]>(channels.map((c) => [c, []]));
  let failures = 0;
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running) {
      n++;
      for (const channel of channels) {
        try {
          const res = await publishHttp(baseUrl, { channel, topic: 'tick', data: n });
          if (res.status === 200) accepted.get(channel)!.push({ n, epoch: res.body.epoch as string, offset: res.body.offset as number });
          else failures++;
        } catch {
          failures++;
        }
      }
      await sleep(15);
    }
  })();
  return {
    accepted,
    get failures() {
      return failures;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

describe('resilience against a node behind a TCP proxy', () => {
  let node: TestNode;
  const proxies: TcpProxy[] = [];
  const extraNodes: TestNode[] = [];
  before(async () => (node = await startNode({ heartbeatIntervalMs: HEARTBEAT_MS })));
  after(async () => {
    closeClients();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(extraNodes.map((n) => n.stop()));
    await node.stop();
  });
  const proxyTo = async (n: TestNode = node) => {
    const proxy = await TcpProxy.start(portOf(n));
    proxies.push(proxy);
    return proxy;
  };

  it('cut: what was published while disconnected arrives after the reconnect, once each, in order, on every channel', async () => {
    const proxy = await proxyTo();
    const channels = ['user:cut1', 'group:cut1', 'group:news1'];
    const { client, log } = await connectClient(proxy.wsUrl(), await token('cut1', { groups: ['cut1'], channels: ['group:news1'] }), {
      backoff: fast,
    });
    await client.channel('group:news1').subscribe();
    const inbox = new Inbox(client, 'tick');
    await publishTicks(node.url, channels, 0, 3);
    for (const ch of channels) await inbox.waitCount(ch, 3);

    proxy.cut({ refuse: true });
    const down = await nextEvent(client, 'disconnected');
    assert.equal(down.code, 1006, 'no close frame: an abnormal closure');
    await publishTicks(node.url, channels, 3, 5);
    await until(() => proxy.accepted >= 3, 'reconnect attempts while the network is down');
    assert.equal(client.state === 'connected', false);

    const back = nextEvent(client, 'connected');
    proxy.forward();
    const welcome = await back;
    for (const ch of channels) assert.equal(welcome.subscriptions[ch]?.recovered, true, `${ch} resumed from its position`);
    await publishTicks(node.url, channels, 8, 2);
    for (const ch of channels) {
      await inbox.waitCount(ch, 10);
      assert.deepEqual(inbox.data(ch), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], ch);
    }
    assert.deepEqual(inbox.assertContiguous(), { 'user:cut1': 0, 'group:cut1': 0, 'group:news1': 0 });
    assert.deepEqual(names(log, 'recovery-failed'), []);
    await sleep(100);
    assert.equal(inbox.messages.length, 30, 'nothing arrives twice, even late');
  });

  it('blackhole: the heartbeat notices a silent link within two intervals, and the client resumes with no loss once the network heals', async () => {
    const proxy = await proxyTo();
    const channels = ['user:bh1', 'group:bh1'];
    const { client, log, welcome } = await connectClient(proxy.wsUrl(), await token('bh1', { groups: ['bh1'] }), {
      backoff: fast,
      connectTimeoutMs: 1000,
    });
    assert.equal(welcome.heartbeat, HEARTBEAT_MS / 1000);
    const inbox = new Inbox(client, 'tick');
    await publishTicks(node.url, channels, 0, 2);
    for (const ch of channels) await inbox.waitCount(ch, 2);

    const down = nextEvent(client, 'disconnected', () => true, 5000);
    const t0 = Date.now();
    const acceptedBefore = proxy.accepted;
    proxy.blackhole();
    const event = await down;
    const noticedIn = Date.now() - t0;
    assert.deepEqual({ code: event.code, reason: event.reason }, { code: 1006, reason: 'heartbeat timeout' });
    assert.ok(noticedIn <= 2 * HEARTBEAT_MS + 1500, `noticed after ${noticedIn} ms`);

    await publishTicks(node.url, channels, 2, 3);
    // The next attempt goes into the blackhole as well: its upgrade is never answered.
    await until(() => proxy.accepted > acceptedBefore, 'a reconnect attempt into the blackhole');
    await sleep(200);
    assert.equal(client.state, 'connecting');

    const back = nextEvent(client, 'connected', () => true, 5000);
    proxy.forward();
    const again = await back;
    assert.ok(
      names(log, 'disconnected').some((d) => (d as { reason: string }).reason === 'connect timeout'),
      'the attempt stuck in the blackhole was abandoned by connectTimeoutMs',
    );
    for (const ch of channels) assert.equal(again.subscriptions[ch]?.recovered, true);
    for (const ch of channels) {
      await inbox.waitCount(ch, 5);
      assert.deepEqual(inbox.data(ch), [0, 1, 2, 3, 4], ch);
    }
    assert.deepEqual(inbox.assertContiguous(), { 'user:bh1': 0, 'group:bh1': 0 });
    assert.deepEqual(names(log, 'recovery-failed'), []);
  });

  it('4001 with a token function: the client fetches a fresh token and connects', async () => {
    const proxy = await proxyTo();
    let calls = 0;
    const tokenFn = async () => (++calls === 1 ? token('tok1', {}, { expiresIn: -3600 }) : token('tok1'));
    const { client, log, welcome } = await connectClient(proxy.wsUrl(), tokenFn, { backoff: fast });
    assert.equal(welcome.user, 'tok1');
    assert.equal(calls, 2);
    assert.equal(proxy.accepted, 2);
    assert.deepEqual(names(log, 'disconnected'), [{ code: 4001, reason: 'token expired', reconnectInMs: 0 }]);
    assert.equal(client.state, 'connected');
  });

  it('4001 with a plain string token: closed, no retry', async () => {
    const proxy = await proxyTo();
    const backoff = recordingBackoff();
    const { client, log } = createClient(proxy.wsUrl(), await token('tok2', {}, { secret: 'another-secret-0123456789-abcdefghijk' }), {
      backoff,
    });
    const closed = await nextEvent(client, 'closed');
    assert.deepEqual(closed, { code: 4001, reason: 'bad signature' });
    assert.equal(client.state, 'closed');
    assert.deepEqual(names(log, 'disconnected'), [{ code: 4001, reason: 'bad signature', reconnectInMs: null }]);
    await sleep(500);
    assert.equal(proxy.accepted, 1, 'one connection attempt only');
    assert.deepEqual(backoff.calls, []);
  });

  it('4003 (POST /v1/disconnect): the client stops and does not reconnect', async () => {
    const proxy = await proxyTo();
    const { client, log } = await connectClient(proxy.wsUrl(), await token('kick1'), { backoff: fast });
    const closed = nextEvent(client, 'closed');
    const res = await api(node, 'POST', '/v1/disconnect', { user: 'kick1' });
    assert.equal(res.status, 200);
    assert.deepEqual(await closed, { code: 4003, reason: 'disconnected by the server' });
    assert.equal(client.state, 'closed');
    await sleep(500);
    assert.equal(proxy.accepted, 1);
    assert.equal(names(log, 'connecting').length, 1);
    assert.equal((await api(node, 'GET', '/v1/users/kick1')).body.online, false);
  });

  it('1001 (drain): the client reconnects at once, without the backoff, to where the proxy now points', async () => {
    const draining = await startNode({ nodeId: 'n-drain' });
    const other = await startNode({ nodeId: 'n-other' });
    extraNodes.push(draining, other);
    const proxy = await proxyTo(draining);
    const backoff = recordingBackoff();
    const { client, log, welcome } = await connectClient(proxy.wsUrl(), await token('drain1'), { backoff });
    assert.equal(welcome.node, 'n-drain');
    proxy.retarget(portOf(other));
    const back = nextEvent(client, 'connected', () => true, 5000);
    await draining.node.drain();
    assert.equal((await back).node, 'n-other');
    assert.deepEqual(names(log, 'disconnected'), [{ code: 1001, reason: 'node draining', reconnectInMs: 0 }]);
    assert.deepEqual(backoff.calls, [], 'a 60 s backoff was not used');
    assert.equal(client.state, 'connected');
  });

  it('4000 (moved): the client reconnects at once, without the backoff, and resumes', async () => {
    const proxy = await proxyTo();
    const backoff = recordingBackoff();
    const { client, log } = await connectClient(proxy.wsUrl(), await token('moved1'), { backoff });
    const inbox = new Inbox(client, 'tick');
    await publishTicks(node.url, ['user:moved1'], 0, 2);
    await inbox.waitCount('user:moved1', 2);
    // A single node never changes its hash ring: close the session with 4000 the way a cluster node would.
    const sessions = (node.node as unknown as { sessions: Set<{ user: string; close(code: number, reason: string): void }> }).sessions;
    const back = nextEvent(client, 'connected', () => true, 5000);
    for (const s of sessions) if (s.user === 'moved1') s.close(4000, 'moved');
    const welcome = await back;
    assert.deepEqual(names(log, 'disconnected'), [{ code: 4000, reason: 'moved', reconnectInMs: 0 }]);
    assert.deepEqual(backoff.calls, []);
    assert.equal(welcome.subscriptions['user:moved1']?.recovered, true);
    await publishTicks(node.url, ['user:moved1'], 2, 1);
    await inbox.waitCount('user:moved1', 3);
    assert.deepEqual(inbox.data('user:moved1'), [0, 1, 2]);
  });

  it('offline queue: sends while disconnected wait (bounded by maxQueue) and are delivered after the reconnect, once each, in order', async () => {
    const proxy = await proxyTo();
    const { client: alice } = await connectClient(proxy.wsUrl(), await token('q-alice'), { backoff: fast, maxQueue: 3 });
    const { client: bob } = await connectClient(node.wsUrl, await token('q-bob'));
    const inbox = new Inbox(bob, 'q');
    proxy.cut({ refuse: true });
    await waitState(alice, 'disconnected');

    const sends = [1, 2, 3].map((n) => alice.send('q-bob', 'q', n));
    await assert.rejects(alice.send('q-bob', 'q', 4), {
      name: 'SwitchboardError',
      code: 'queue_full',
      message: 'offline queue is full (3)',
    });
    await sleep(200);
    assert.equal(inbox.messages.length, 0, 'nothing is sent while offline');

    proxy.forward();
    const results = await within(Promise.all(sends), 'the queued sends to resolve');
    assert.deepEqual(
      results.map((r) => r.offset - results[0]!.offset),
      [0, 1, 2],
    );
    assert.ok(results.every((r) => r.duplicate === undefined));
    await bob.send('q-bob', 'q', 'marker');
    await inbox.waitData('user:q-bob', 'marker');
    assert.deepEqual(inbox.data('user:q-bob'), [1, 2, 3, 'marker']);
    assert.deepEqual(
      inbox
        .of('user:q-bob')
        .slice(0, 3)
        .map((m) => m.offset),
      results.map((r) => r.offset),
    );
  });

  it('a send whose reply was lost with the connection is resent with the same key and delivered once; it resolves with the original offset', async () => {
    const proxy = await proxyTo();
    const { client: alice } = await connectClient(proxy.wsUrl(), await token('lost-alice'), { backoff: fast });
    const { client: bob } = await connectClient(node.wsUrl, await token('lost-bob'));
    const inbox = new Inbox(bob, 'once');
    const isSend = (text: string) => text.includes('"type":"send"');
    const replyLost = proxy.dropRepliesAfter(isSend);

    const sending = alice.send('lost-bob', 'once', { n: 1 });
    await within(replyLost, 'the send frame to pass the proxy');
    const [delivered] = await inbox.waitCount('user:lost-bob', 1);
    // The server published it; its reply is being dropped. Now the connection dies.
    await sleep(50);
    proxy.cut();
    const result = await within(sending, 'the send to resolve after the reconnect');
    assert.deepEqual(result, { epoch: delivered!.epoch, offset: delivered!.offset, duplicate: true });

    const sent = proxy.clientFrames.filter(isSend).map((t) => JSON.parse(t) as { key: string; data: unknown });
    assert.equal(sent.length, 2, 'sent once, resent once');
    assert.equal(sent[0]!.key, sent[1]!.key, 'the resend carries the same idempotency key');
    assert.deepEqual(sent[1]!.data, { n: 1 });

    await alice.send('lost-bob', 'once', { n: 2 });
    await inbox.waitData('user:lost-bob', { n: 2 });
    assert.deepEqual(inbox.data('user:lost-bob'), [{ n: 1 }, { n: 2 }]);
  });
});

describe('resilience against a real switchboard process', () => {
  let port: number;
  let cli: CliNode | undefined;
  let proxy: TcpProxy | undefined;
  before(async () => {
    port = await freePort();
    cli = await spawnCliNode(port, ['--heartbeat-interval-ms', String(HEARTBEAT_MS)]);
    proxy = await TcpProxy.start(port);
  });
  after(async () => {
    closeClients();
    await proxy?.close();
    await cli?.kill();
  });

  /** Waits until every accepted publication of each channel reached the inbox, then checks them. */
  async function assertAllOnce(inbox: Inbox, loop: ReturnType<typeof publisherLoop>, channels: string[]): Promise<void> {
    for (const ch of channels) {
      const want = loop.accepted.get(ch)!.map((a) => a.n);
      await until(() => inbox.data(ch).length >= want.length, `${want.length} ticks on ${ch} (have ${inbox.data(ch).length})`, 8000);
      assert.deepEqual(inbox.data(ch), want, `${ch}: every accepted publication, once, in order`);
    }
  }

  it('a cut mid-stream within one process lifetime: exactly once, no recovery-failed', async () => {
    const channels = ['user:cli1', 'group:cli1'];
    const { client, log } = await connectClient(proxy!.wsUrl(), await token('cli1', { groups: ['cli1'] }), { backoff: fast });
    const inbox = new Inbox(client, 'tick');
    const loop = publisherLoop(cli!.url, channels);
    try {
      await inbox.waitCount('group:cli1', 5);
      for (let i = 0; i < 2; i++) {
        const down = nextEvent(client, 'disconnected');
        const back = nextEvent(client, 'connected', () => true, 8000);
        proxy!.cut();
        await down;
        await back;
        await inbox.waitCount('group:cli1', inbox.of('group:cli1').length + 3);
      }
    } finally {
      await loop.stop();
    }
    assert.equal(loop.failures, 0);
    await assertAllOnce(inbox, loop, channels);
    assert.deepEqual(inbox.assertContiguous(), { 'user:cli1': 0, 'group:cli1': 0 });
    assert.deepEqual(names(log, 'recovery-failed'), []);
  });

  it('SIGKILL and restart on the same port mid-stream: recovery-failed for each channel (new epoch), then new messages arrive', async () => {
    const channels = ['user:cli2', 'group:cli2'];
    const { client, log, welcome } = await connectClient(cli!.wsUrl, await token('cli2', { groups: ['cli2'] }), { backoff: fast });
    const oldEpochs = Object.fromEntries(Object.entries(welcome.subscriptions).map(([ch, s]) => [ch, s.epoch]));
    const inbox = new Inbox(client, 'tick');
    const loop = publisherLoop(cli!.url, channels);
    let restarted: CliNode | undefined;
    try {
      await inbox.waitCount('group:cli2', 5);
      const down = nextEvent(client, 'disconnected', () => true, 5000);
      await cli!.kill();
      assert.equal((await down).code, 1006);
      await sleep(200);
      restarted = await spawnCliNode(port, ['--heartbeat-interval-ms', String(HEARTBEAT_MS)]);
      cli = restarted;
      await nextEvent(client, 'connected', () => true, 8000);
      // Messages published by the new process after the reconnect reach the app.
      const before = inbox.of('group:cli2').length;
      await inbox.waitCount('group:cli2', before + 5, 8000);
      await until(
        () => inbox.of('user:cli2').filter((m) => m.epoch !== oldEpochs['user:cli2']).length >= 3,
        'ticks of the new process on user:cli2',
        8000,
      );
    } finally {
      await loop.stop();
    }
    assert.ok(loop.failures > 0, 'the publisher loop was running while the process was down');
    const failed = names(log, 'recovery-failed') as { channel: string; epoch: string; offset: number }[];
    assert.deepEqual(failed.map((f) => f.channel).sort(), ['broadcast', 'group:cli2', 'user:cli2']);
    for (const f of failed) assert.notEqual(f.epoch, oldEpochs[f.channel], `${f.channel} has a new epoch`);
    // One epoch change per channel, contiguous offsets within each epoch.
    assert.deepEqual(inbox.assertContiguous(), { 'user:cli2': 1, 'group:cli2': 1 });
    for (const ch of channels) {
      const fresh = inbox.of(ch).filter((m) => m.epoch !== oldEpochs[ch]);
      assert.ok(fresh.length > 0, `${ch}: messages of the new process arrived`);
      assert.equal(fresh[0]!.epoch, failed.find((f) => f.channel === ch)!.epoch);
    }
    assert.equal(client.state, 'connected');
    const r = await client.send('cli2', 'after', 'restart');
    assert.equal(r.epoch, failed.find((f) => f.channel === 'user:cli2')!.epoch);
  });
});
