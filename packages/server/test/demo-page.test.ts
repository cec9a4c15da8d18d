/**
 * The demo page at `/` in a real browser (Debian's Chromium driven by playwright-core): two
 * browser contexts are two tabs, alice and bob in group `lobby`, against a dev-mode node on
 * loopback. Nothing is mocked: the page fetches its token from /dev/token and talks to the node
 * through the SDK bundle the node serves at /switchboard.min.js, over a real WebSocket.
 *
 * How the network drop is simulated: `context.setOffline(true)` makes Chromium fire `offline`,
 * report `navigator.onLine === false` and fail new connections, but it does NOT close a WebSocket
 * that is already open: its frames are held and delivered when the context goes back online
 * (checked by hand with Debian's Chromium 156). The SDK does what a real client should on a
 * network loss the browser reports: it drops that socket at once (ignoring anything late from it),
 * makes no attempt while offline and reconnects on `online` with `?resume=`. So whatever bob sees
 * afterwards came from the new session's replay, which the test checks through the new session id
 * and the page's "recovered" notice. POST /v1/disconnect would not do: it closes with 4003, after
 * which the page must not reconnect (the last test checks exactly that).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { OUTPUT_DIR, browserSkip, launchChromium, openTab } from './browser-helpers.js';
import { api, sleep, startNode, type TestNode } from './helpers.js';
import { eventually } from './support/eventually.js';

const skip = browserSkip;

/** How the browser tests poll the page: a real browser and reconnects take a while. */
const WAIT = { timeoutMs: 8000, intervalMs: 50 };

/** The texts of the group messages in a page's log, in display order. */
const groupTexts = (page: Page) =>
  page.locator('[data-testid="chat-message"][data-channel="group:lobby"] [data-testid="chat-text"]').allTextContents();

/** The `data-user` of every entry in a page's presence list. */
async function presenceOf(page: Page): Promise<string[]> {
  // One snapshot in the page: reading item by item races with the list changing under us.
  return page.getByTestId('presence-user').evaluateAll((items) => items.map((item) => item.getAttribute('data-user') ?? ''));
}

const connState = (page: Page) => page.getByTestId('conn-state').getAttribute('data-state');

describe('demo page in a real browser', { skip }, () => {
  let node: TestNode;
  let browser: Browser;
  const contexts: Record<string, BrowserContext> = {};
  const pages: Record<string, Page> = {};
  const pageErrors: string[] = [];

  /** Opens a fresh tab (its own context, so its own sessionStorage) and signs `user` in to lobby. */
  async function signIn(user: string): Promise<Page> {
    const page = await openTab(browser, user, { width: 1100, height: 720 }, { contexts, pages, errors: pageErrors });
    await page.goto(`${node.url}/`);
    await page.getByTestId('signin-user').fill(user);
    assert.equal(await page.getByTestId('signin-group').inputValue(), 'lobby');
    await page.getByTestId('signin-submit').click();
    await page.locator('[data-testid="conn-state"][data-state="connected"]').waitFor({ timeout: 8000 });
    return page;
  }

  /** Types into the group composer and sends, the way a user would. */
  async function say(page: Page, text: string): Promise<void> {
    await page.getByTestId('chat-input').fill(text);
    await page.getByTestId('chat-send').click();
    await eventually(async () => assert.equal(await page.getByTestId('chat-input').inputValue(), ''), {
      ...WAIT,
      message: 'composer cleared after sending',
    });
  }

  before(async () => {
    // With the inbox on, as the page's read receipts need.
    node = await startNode({ inbox: 'on' }, 'dev');
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await node?.stop();
  });

  it('serves the page, its script and style, and a config saying dev mode', async () => {
    const config = await api(node, 'GET', '/config.json', undefined, null);
    assert.deepEqual(config, { status: 200, body: { wsPath: '/ws', dev: true } });
    const files = [
      ['/', 'text/html'],
      ['/demo.js', 'text/javascript'],
      ['/demo.css', 'text/css'],
      ['/switchboard.min.js', 'text/javascript'],
    ] as const;
    for (const [path, type] of files) {
      const res = await fetch(node.url + path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`), path);
      await res.arrayBuffer();
    }
  });

  it('signs alice and bob in, and each sees the other in the lobby presence list', async () => {
    const alice = await signIn('alice');
    const bob = await signIn('bob');
    await eventually(async () => assert.deepEqual(await presenceOf(alice), ['alice', 'bob']), {
      ...WAIT,
      message: "alice's presence list",
    });
    await eventually(async () => assert.deepEqual(await presenceOf(bob), ['alice', 'bob']), { ...WAIT, message: "bob's presence list" });
    assert.equal(await alice.getByTestId('me').textContent(), 'alice');
    assert.equal(await bob.getByTestId('group-name').textContent(), 'lobby');
  });

  it("shows a group message from alice in bob's log, sent by alice", async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    await say(alice!, 'hello bob');
    const message = bob!.locator('[data-testid="chat-message"][data-channel="group:lobby"]').last();
    await message.waitFor({ timeout: 8000 });
    assert.equal(await message.getAttribute('data-from'), 'alice');
    assert.deepEqual(await groupTexts(bob!), ['hello bob']);
    // alice gets her own publication back on the group channel, once
    await eventually(async () => assert.deepEqual(await groupTexts(alice!), ['hello bob']), { ...WAIT, message: "alice's log" });
  });

  it('delivers a direct message from bob to alice only', async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    await bob!.getByTestId('dm-to').fill('alice');
    await bob!.getByTestId('dm-text').fill('psst, alice');
    await bob!.getByTestId('dm-send').click();
    const dm = alice!.locator('[data-testid="chat-message"][data-channel="user:alice"]');
    await dm.waitFor({ timeout: 8000 });
    assert.equal(await dm.getAttribute('data-from'), 'bob');
    assert.equal(await dm.getByTestId('chat-text').textContent(), 'psst, alice');
  });

  it("marks bob's direct message read once alice's page has shown it (a read receipt)", async () => {
    const { bob } = pages as Required<typeof pages>;
    const sent = bob!.locator('[data-testid="chat-message"][data-channel="user:alice"].mine').last();
    await sent.waitFor({ timeout: 8000 });
    // alice's SDK acked the message after her page rendered it; bob's page got the receipt.
    await eventually(async () => assert.equal(await sent.getAttribute('data-status'), 'read'), { ...WAIT, message: 'the read receipt' });
    assert.equal(await sent.getByTestId('chat-status').textContent(), '✓✓ read');
    await bob!.screenshot({ path: `${OUTPUT_DIR}/demo-read-receipt.png` });
  });

  it('gives bob the 3 messages alice sent while he was offline, exactly once and in order', async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    const sessionBefore = await bob!.getByTestId('session-id').textContent();

    await contexts.bob!.setOffline(true);
    await eventually(async () => assert.equal(await connState(bob!), 'offline'), { ...WAIT, message: "bob's connection state" });
    assert.equal(await bob!.getByTestId('conn-text').textContent(), 'Offline — waiting for the network');
    for (const text of ['missed 1', 'missed 2', 'missed 3']) await say(alice!, text);
    await eventually(async () => assert.equal((await groupTexts(alice!)).at(-1), 'missed 3'), { ...WAIT, message: "alice's own log" });
    await sleep(300);
    assert.deepEqual(await groupTexts(bob!), ['hello bob'], 'nothing reaches bob while he is offline');

    await contexts.bob!.setOffline(false);
    await eventually(async () => assert.equal(await connState(bob!), 'connected'), { ...WAIT, message: "bob's connection state" });
    await eventually(
      async () => {
        const texts = await groupTexts(bob!);
        assert.ok(texts.length >= 4, JSON.stringify(texts));
      },
      { ...WAIT, message: "bob's log" },
    );
    // The old socket's held frames are released when the context comes back: give any late
    // duplicate the time to show up before checking there is none.
    await sleep(700);
    assert.deepEqual(await groupTexts(bob!), ['hello bob', 'missed 1', 'missed 2', 'missed 3']);
    const offsets = await bob!
      .locator('[data-testid="chat-message"][data-channel="group:lobby"]')
      .evaluateAll((items) => items.map((m) => Number(m.getAttribute('data-offset'))));
    assert.deepEqual(offsets, [1, 2, 3, 4]);
    assert.notEqual(await bob!.getByTestId('session-id').textContent(), sessionBefore, 'bob came back on a new session');
    assert.deepEqual(await bob!.getByTestId('notice').allTextContents(), ['Back online: 3 missed messages recovered.']);
    await eventually(async () => assert.deepEqual(await presenceOf(bob!), ['alice', 'bob']), {
      ...WAIT,
      message: "bob's presence list after coming back",
    });

    mkdirSync(OUTPUT_DIR, { recursive: true });
    await bob!.screenshot({ path: `${OUTPUT_DIR}demo-page.png` });
  });

  it("resumes bob's tab from sessionStorage when he reopens the page: what he missed shows once", async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    const groupOffsets = async (page: Page) =>
      page
        .locator('[data-testid="chat-message"][data-channel="group:lobby"]')
        .evaluateAll((items) => items.map((m) => Number(m.getAttribute('data-offset'))));

    // Leaving the page closes its socket; the tab's sessionStorage (identity, positions) stays.
    await bob!.goto('about:blank');
    await eventually(async () => assert.deepEqual(await presenceOf(alice!), ['alice']), {
      ...WAIT,
      message: "alice's presence list once bob's page is closed",
    });
    for (const text of ['while away 1', 'while away 2']) await say(alice!, text);
    await eventually(async () => assert.equal((await groupTexts(alice!)).at(-1), 'while away 2'), { ...WAIT, message: "alice's own log" });

    await bob!.goto(`${node.url}/`);
    await bob!.locator('[data-testid="conn-state"][data-state="connected"]').waitFor({ timeout: 8000 });
    assert.equal(await bob!.getByTestId('me').textContent(), 'bob', 'signed in again from sessionStorage, without the form');
    await eventually(
      async () => {
        const texts = await groupTexts(bob!);
        assert.ok(texts.length >= 2, JSON.stringify(texts));
      },
      { ...WAIT, message: "bob's log after reopening" },
    );
    await sleep(500);
    assert.deepEqual(await groupTexts(bob!), ['while away 1', 'while away 2']);
    assert.deepEqual(await groupOffsets(bob!), [5, 6]);
    assert.deepEqual(await bob!.getByTestId('notice').allTextContents(), ['Back online: 2 missed messages recovered.']);
    await eventually(async () => assert.deepEqual(await presenceOf(alice!), ['alice', 'bob']), {
      ...WAIT,
      message: "alice's presence list after bob is back",
    });

    // The positions were saved as messages arrived: a plain reload replays nothing, then goes live.
    await bob!.reload();
    await bob!.locator('[data-testid="conn-state"][data-state="connected"]').waitFor({ timeout: 8000 });
    await say(alice!, 'after the reload');
    await eventually(
      async () => {
        const texts = await groupTexts(bob!);
        assert.ok(texts.length >= 1, JSON.stringify(texts));
      },
      { ...WAIT, message: "bob's log after the reload" },
    );
    await sleep(300);
    assert.deepEqual(await groupTexts(bob!), ['after the reload']);
    assert.deepEqual(await groupOffsets(bob!), [7]);
    assert.deepEqual(await bob!.getByTestId('notice').allTextContents(), []);
  });

  it('does not reconnect after the server disconnects the user with 4003', async () => {
    const { alice, bob } = pages as Required<typeof pages>;
    const res = await api(node, 'POST', '/v1/disconnect', { user: 'bob' });
    assert.equal(res.status, 200);
    await eventually(async () => assert.equal(await connState(bob!), 'signed-out'), { ...WAIT, message: "bob's connection state" });
    assert.equal(
      await bob!.getByTestId('signin-error').textContent(),
      'Disconnected by the server (4003): disconnected by the server. Sign in again.',
    );
    await eventually(async () => assert.deepEqual(await presenceOf(alice!), ['alice']), { ...WAIT, message: "alice's presence list" });
    await sleep(1000);
    assert.equal(await connState(bob!), 'signed-out', 'no reconnect after 4003');
    const user = await api(node, 'GET', '/v1/users/bob');
    assert.equal(user.body.online, false);
    assert.deepEqual(pageErrors, []);
  });
});
