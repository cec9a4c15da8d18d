/**
 * The SDK's browser bundles in a real browser (Debian's Chromium driven by playwright-core),
 * against an in-process dev-mode node on loopback that serves the ESM bundle at
 * /switchboard.min.js. Each user is a browser context (its own tab, storage and network) showing
 * a tiny harness page at the node's origin; the harness is plain JavaScript, so what runs in the
 * page is exactly the shipped bundle, talking to the node over real WebSockets. alice loads the ESM bundle with `import()`, bob the global
 * one with a script tag (`window.Switchboard`).
 *
 * Network loss: `context.setOffline(true)` makes Chromium fire `offline` and fail new
 * connections, but holds (does not close) an open WebSocket, releasing its frames when the
 * context is back online. The SDK must drop that socket on `offline` and resume on `online`, so
 * whatever bob gets afterwards comes from the new session's replay, once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { OUTPUT_DIR, browserSkip, launchChromium, openTab } from '../../server/test/browser-helpers.js';
import { sleep, startNode, token, type TestNode } from '../../server/test/helpers.js';

const GLOBAL_BUNDLE = fileURLToPath(new URL('../dist/switchboard.global.min.js', import.meta.url));
const skip = browserSkip;

/** A chat message as the harness records it. */
interface Received {
  channel: string;
  offset: number;
  from: string | null;
  text: string;
}

/** What the harness page puts on `window` (see HARNESS). */
interface Harness {
  start(bundle: 'esm' | 'global', user: string, token: string, wsUrl: string): Promise<string>;
  client: {
    state: string;
    session?: { session: string };
    send(to: string, topic: string, data: unknown): Promise<{ epoch: string; offset: number }>;
    publish(channel: string, topic: string, data: unknown): Promise<{ epoch: string; offset: number }>;
  };
  received: Received[];
  events: string[];
  queued?: Promise<{ epoch: string; offset: number }>;
}
type PageGlobals = { harness: Harness; Switchboard: unknown };

/**
 * The page each user opens, served at the node's origin so that `import('/switchboard.min.js')`
 * and the WebSocket go to the node. It records every chat message and lifecycle event.
 */
const HARNESS = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard SDK in a browser</title><link rel="icon" href="data:,">
<style>
  body { font: 15px/1.5 system-ui, sans-serif; margin: 24px; color: #1b2030; background: #f4f6fb; }
  h1 { font-size: 1.2rem; margin: 0 0 4px; } #state { color: #667085; margin: 0 0 12px; }
  ol { list-style: none; padding: 0; } li { background: #fff; border-radius: 10px; padding: 6px 12px; margin: 6px 0; width: fit-content; }
  li small { color: #667085; margin-right: 8px; }
</style></head>
<body><h1 id="who">not started</h1><p id="state">–</p><ol id="log"></ol>
<script type="module">
const h = (window.harness = {
  received: [],
  events: [],
  async start(bundle, user, token, wsUrl) {
    const sdk = bundle === 'global' ? window.Switchboard : await import('/switchboard.min.js');
    document.getElementById('who').textContent = user + ' (' + bundle + ' bundle)';
    const client = (h.client = new sdk.Switchboard(wsUrl, {
      token,
      positions: new sdk.WebStoragePositionStore(sessionStorage, 'positions:' + user),
      backoff: sdk.fullJitter({ baseMs: 200, maxMs: 2000 }),
    }));
    client.events.on('state', (e) => {
      h.events.push('state:' + e.state);
      document.getElementById('state').textContent = e.state + (client.session ? ' · ' + client.session.session : '');
    });
    client.events.on('disconnected', (e) => h.events.push('disconnected:' + e.code + ':' + e.reason + ':' + e.reconnectInMs));
    client.on('chat', (m) => {
      h.received.push({ channel: m.channel, offset: m.offset, from: m.from, text: m.data.text });
      const item = document.createElement('li');
      item.append(Object.assign(document.createElement('small'), { textContent: m.channel + ' #' + m.offset + ' from ' + m.from }), m.data.text);
      document.getElementById('log').append(item);
    });
    client.events.on('error', (e) => h.events.push('error:' + e.code + ':' + e.message));
    await new Promise((resolve, reject) => {
      client.events.on('connected', resolve);
      setTimeout(() => reject(new Error(user + ' did not connect within 8 s: ' + h.events.join(', '))), 8000);
    });
    document.getElementById('state').textContent = 'connected · ' + client.session.session;
    return client.session.session;
  },
});
</script></body></html>`;

/** Polls `read` until `ok` accepts its value; fails with the last value seen. */
async function eventually<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

const received = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobals).harness.received);
const events = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobals).harness.events);
const clientState = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobals).harness.client.state);
const session = (page: Page) => page.evaluate(() => (globalThis as unknown as PageGlobals).harness.client.session?.session);
/** Sends a direct message from the page and resolves with its position. */
const send = (page: Page, to: string, text: string) =>
  page.evaluate(([to, text]) => (globalThis as unknown as PageGlobals).harness.client.send(to, 'chat', { text }), [to, text] as const);

describe('SDK bundles in a real browser', { skip }, () => {
  let node: TestNode;
  let browser: Browser;
  const contexts: Record<string, BrowserContext> = {};
  const pages: Record<string, Page> = {};
  const pageErrors: string[] = [];

  /**
   * Opens the harness at the node's origin in a fresh context (its own storage and network). The
   * page must come from the node itself: Chromium's local network access checks block a page
   * that `route.fulfill` made up from connecting to loopback. So the tab loads a real document of
   * the node (/config.json), and `setContent` replaces it, keeping its origin.
   */
  async function open(user: string): Promise<Page> {
    const page = await openTab(browser, user, { width: 760, height: 520 }, { contexts, pages, errors: pageErrors });
    await page.goto(`${node.url}/config.json`);
    await page.setContent(HARNESS);
    await page.waitForFunction(() => 'harness' in globalThis);
    return page;
  }

  /** Connects `user` (groups: team) with the chosen bundle; resolves with the session id. */
  async function start(page: Page, bundle: 'esm' | 'global', user: string): Promise<string> {
    const jwt = await token(user, { groups: ['team'] });
    return page.evaluate(([bundle, user, jwt, wsUrl]) => (globalThis as unknown as PageGlobals).harness.start(bundle, user, jwt, wsUrl), [
      bundle,
      user,
      jwt,
      node.wsUrl,
    ] as const);
  }

  before(async () => {
    assert.ok(existsSync(GLOBAL_BUNDLE), `${GLOBAL_BUNDLE} is missing: run "npm run build" first`);
    node = await startNode({}, 'dev');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
  });

  it('imports the ESM bundle the node serves at /switchboard.min.js, with every export', async () => {
    const alice = await open('alice');
    const exports = await alice.evaluate(async (url) => {
      const sdk = (await import(url)) as Record<string, unknown>;
      return Object.keys(sdk)
        .sort()
        .map((name) => `${name}:${typeof sdk[name]}`);
    }, '/switchboard.min.js');
    assert.deepEqual(exports, [
      'CloseCode:object',
      'MemoryPositionStore:function',
      'Subscription:function',
      'Switchboard:function',
      'SwitchboardError:function',
      'WebStoragePositionStore:function',
      'fullJitter:function',
      'reconnectAdvice:function',
    ]);
  });

  it('makes window.Switchboard the client class with the global bundle, the other exports on it', async () => {
    const bob = await open('bob');
    await bob.addScriptTag({ path: GLOBAL_BUNDLE });
    const global = await bob.evaluate(() => {
      const S = (globalThis as unknown as PageGlobals).Switchboard as {
        new (url: string, options: { token: string; autoConnect: boolean }): { state: string };
        Switchboard: unknown;
        WebStoragePositionStore: unknown;
        fullJitter: unknown;
        SwitchboardError: unknown;
      };
      const client = new S('ws://127.0.0.1:9/ws', { token: 't', autoConnect: false });
      return {
        isClass: typeof S === 'function' && Function.prototype.toString.call(S).startsWith('class'),
        selfExport: S.Switchboard === S,
        state: client.state,
        others: [typeof S.WebStoragePositionStore, typeof S.fullJitter, typeof S.SwitchboardError],
      };
    });
    assert.deepEqual(global, { isClass: true, selfExport: true, state: 'disconnected', others: ['function', 'function', 'function'] });
  });

  it('lets alice (ESM bundle) and bob (global bundle) exchange direct and group messages', async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    const [aliceSession, bobSession] = await Promise.all([start(alice!, 'esm', 'alice'), start(bob!, 'global', 'bob')]);
    assert.match(aliceSession, /^s-/);
    assert.notEqual(aliceSession, bobSession);

    const dm = await send(alice!, 'bob', 'hi bob');
    assert.equal(dm.offset, 1);
    const published = await bob!.evaluate(() =>
      (globalThis as unknown as PageGlobals).harness.client.publish('group:team', 'chat', { text: 'hello team' }),
    );
    assert.equal(published.offset, 1);

    await eventually(
      "alice's messages",
      () => received(alice!),
      (list) => list.length >= 1,
    );
    await eventually(
      "bob's messages",
      () => received(bob!),
      (list) => list.length >= 2,
    );
    await sleep(200);
    assert.deepEqual(await received(alice!), [{ channel: 'group:team', offset: 1, from: 'bob', text: 'hello team' }]);
    assert.deepEqual(await received(bob!), [
      { channel: 'user:bob', offset: 1, from: 'alice', text: 'hi bob' },
      { channel: 'group:team', offset: 1, from: 'bob', text: 'hello team' },
    ]);
  });

  it('drops the socket when the browser goes offline, queues sends, and after coming back delivers what was missed once, in order', async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    const sessionBefore = await session(bob!);
    const eventsBefore = (await events(bob!)).length;

    await contexts.bob!.setOffline(true);
    await eventually(
      "bob's client state",
      () => clientState(bob!),
      (s) => s === 'disconnected',
    );
    // Queued while offline: written once the connection is back, with its idempotency key.
    await bob!.evaluate(() => {
      const h = (globalThis as unknown as PageGlobals).harness;
      h.queued = h.client.send('alice', 'chat', { text: 'sent from the train' });
    });
    for (const text of ['missed 1', 'missed 2', 'missed 3']) await send(alice!, 'bob', text);
    await sleep(1000);
    assert.deepEqual(
      (await events(bob!)).slice(eventsBefore),
      ['state:disconnected', 'disconnected:1006:network offline:null'],
      'no attempt while offline',
    );
    assert.equal((await received(bob!)).length, 2, 'nothing reaches bob while he is offline');
    assert.equal((await received(alice!)).length, 1, "bob's queued send waits for the network");

    await contexts.bob!.setOffline(false);
    await eventually(
      "bob's client state",
      () => clientState(bob!),
      (s) => s === 'connected',
    );
    assert.notEqual(await session(bob!), sessionBefore, 'bob came back on a new session');
    await eventually(
      "bob's messages",
      () => received(bob!),
      (list) => list.length >= 5,
    );
    const queued = await bob!.evaluate(() => (globalThis as unknown as PageGlobals).harness.queued);
    assert.equal(queued?.offset, 1);
    // The old socket's held frames are released when the context comes back: give any late
    // duplicate the time to show up before checking there is none.
    await sleep(700);
    const direct = (await received(bob!)).filter((m) => m.channel === 'user:bob');
    assert.deepEqual(
      direct.map((m) => [m.offset, m.text]),
      [
        [1, 'hi bob'],
        [2, 'missed 1'],
        [3, 'missed 2'],
        [4, 'missed 3'],
      ],
    );
    assert.deepEqual((await received(alice!)).slice(1), [{ channel: 'user:alice', offset: 1, from: 'bob', text: 'sent from the train' }]);

    mkdirSync(OUTPUT_DIR, { recursive: true });
    await bob!.screenshot({ path: `${OUTPUT_DIR}sdk-browser.png` });
    assert.deepEqual(pageErrors, []);
  });
});
