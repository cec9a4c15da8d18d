/**
 * The admin dashboard at `/admin` in a real browser (Debian's Chromium, playwright-core), served by
 * a gateway in front of two in-process nodes and by a node itself. Nothing is mocked: the page asks
 * the real `/v1` API. Checked as an operator would: locked (no figure, no API call) until the key
 * is given; a wrong key refused; the key in `#key=…` unlocks and never reaches a server log; the
 * connection figures equal the nodes' real session counts as clients come; a chart that moves while
 * messages flow; user lookup, group presence, channel history and the ring; publish and disconnect,
 * each behind a confirmation that can be cancelled. Screenshots go to test-output/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { Gateway, gatewayOptions, resolveOptions } from '../src/index.js';
import { MemoryRegistry } from '../src/registry/memory-registry.js';
import { OUTPUT_DIR, browserSkip, launchChromium } from './browser-helpers.js';
import { API_KEY, SECRET, TestClient, api, type TestNode } from './helpers.js';
import { InProcessCluster } from './cluster/in-process.js';
import { eventually } from './support/eventually.js';

const WAIT = { timeoutMs: 10_000, intervalMs: 100 };

describe('admin dashboard in a real browser', { skip: browserSkip }, () => {
  const cluster = new InProcessCluster();
  let n1: TestNode;
  let n2: TestNode;
  let gateway: Gateway;
  let browser: Browser;
  let page: Page;
  const clients: TestClient[] = [];
  const problems: string[] = [];
  /** The `/v1` calls the page made, by path. */
  const apiCalls: string[] = [];

  const text = (id: string) => page.getByTestId(id).innerText();
  const connect = async (node: TestNode, user: string, groups: string[] = []) => {
    const client = await TestClient.connect(node, user, { groups });
    clients.push(client);
    return client;
  };
  const realConnections = () => n1.node.sessionCount + n2.node.sessionCount;

  async function openPage(url: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const p = await context.newPage();
    p.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    p.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    p.on('request', (req) => {
      const path = new URL(req.url()).pathname;
      if (path.startsWith('/v1/')) apiCalls.push(path);
      if (!req.url().startsWith(url.replace(/\/admin.*$/, ''))) problems.push(`request outside the server: ${req.url()}`);
    });
    await p.goto(url);
    return p;
  }

  before(async () => {
    n1 = await cluster.start('n1', { logLevel: 'debug' });
    n2 = await cluster.start('n2');
    const options = resolveOptions({
      port: 0,
      jwtSecret: SECRET,
      apiKey: API_KEY,
      nodeId: 'gw-admin',
      logLevel: 'silent',
      gatewayProbeIntervalMs: 200,
    });
    gateway = new Gateway(gatewayOptions(options), { registry: new MemoryRegistry(cluster.shared.roster) });
    await gateway.start();
    await eventually(() => assert.equal(gateway.health.live().length, 2), WAIT);
    browser = await launchChromium();
    mkdirSync(OUTPUT_DIR, { recursive: true });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await browser?.close();
    await gateway?.stop();
    await cluster.stop();
  });

  it('shows nothing and calls no API until the key is given', async () => {
    await connect(n1, 'alice', ['ops']);
    page = await openPage(`${gateway.url}/admin`);
    await page.getByTestId('unlock-key').waitFor();
    assert.equal(await page.getByTestId('dashboard').isHidden(), true);
    const body = await page.locator('body').innerText();
    for (const secret of ['n1', 'n2', 'alice', '127.0.0.1']) assert.ok(!body.includes(secret), `"${secret}" shown while locked`);
    assert.deepEqual(apiCalls, [], 'no /v1 call before the key');
    const headers = (await page.request.get(`${gateway.url}/admin`)).headers();
    assert.match(headers['content-security-policy'] ?? '', /default-src 'none'/);
    await page.screenshot({ path: `${OUTPUT_DIR}admin-locked.png` });
  });

  it('refuses a wrong key and stays locked', async () => {
    await page.getByTestId('unlock-key').fill('not-the-key');
    await page.getByTestId('unlock-key').press('Enter');
    await page.getByTestId('unlock-error').waitFor({ state: 'visible' });
    assert.match(await text('unlock-error'), /Not unlocked: missing or wrong API key/);
    assert.equal(await page.getByTestId('dashboard').isHidden(), true);
    assert.ok(!(await page.locator('body').innerText()).includes('n1'));
  });

  it('unlocks with the right key; its figures are the real connection counts as clients come', async () => {
    await page.getByTestId('unlock-key').fill(API_KEY);
    await page.getByTestId('unlock-key').press('Enter');
    await page.getByTestId('dashboard').waitFor({ state: 'visible' });
    await connect(n1, 'bob', ['ops']);
    await connect(n1, 'bob', ['ops']);
    await connect(n2, 'carol', ['ops']);
    await connect(n2, 'dave');
    await eventually(async () => assert.equal(await text('total-connections'), String(realConnections())), WAIT);
    assert.equal(realConnections(), 5);
    assert.equal(await text('total-nodes'), '2');
    const row = (node: string) => page.locator(`[data-testid="nodes"] tr[data-node="${node}"] td`).allInnerTexts();
    await eventually(async () => assert.equal((await row('n1'))[2], String(n1.node.sessionCount)), WAIT);
    assert.equal((await row('n2'))[2], String(n2.node.sessionCount));
    await connect(n2, 'erin');
    await eventually(async () => assert.equal(await text('total-connections'), '6'), WAIT);
    await eventually(async () => assert.equal(await text('total-users'), '5'), { ...WAIT, timeoutMs: 15_000 });
  });

  it('draws the publish and delivery rates as a chart that moves while messages flow', async () => {
    const canvas = () =>
      page.locator('[data-testid="chart-rates"] canvas').evaluate((c) => (c as unknown as { toDataURL(): string }).toDataURL());
    const quiet = await canvas();
    const stop = Date.now() + 3000;
    let sent = 0;
    while (Date.now() < stop) {
      await api(n1, 'POST', '/v1/publish', { channel: 'group:ops', topic: 'tick', data: sent++ });
      await new Promise((r) => setTimeout(r, 20));
    }
    await eventually(async () => assert.ok(Number((await text('rate-published')).replace(/,/g, '')) > 0), WAIT);
    await eventually(async () => assert.ok(Number((await text('rate-delivered')).replace(/,/g, '')) > 0), WAIT);
    assert.notEqual(await canvas(), quiet, 'the chart changed');
  });

  it('shows the ring shares, a user, a group and a channel', async () => {
    const shares = await page.locator('[data-testid="ring"] .share').allInnerTexts();
    assert.deepEqual(
      shares.map((s) => s.split(' ')[0]),
      ['n1', 'n2'],
    );
    const total = shares.reduce((sum, s) => sum + Number(/(\d+) %/.exec(s)![1]), 0);
    assert.ok(total >= 99 && total <= 101, `shares add up to ${total} %`);

    await page.getByTestId('user-id').fill('bob');
    await page.getByTestId('user-id').press('Enter');
    await eventually(async () => assert.match(await text('user-result'), /bob is online with 2 session/), WAIT);
    assert.equal((await page.locator('[data-testid="user-result"] tbody tr').allInnerTexts()).filter((r) => r.includes('n1')).length, 2);

    await page.getByTestId('presence-group').fill('ops');
    await page.getByTestId('presence-group').press('Enter');
    await eventually(async () => assert.match(await text('presence-result'), /3 user\(s\) in group:ops/), WAIT);
    assert.match(await text('presence-result'), /carol\s+1\s+n2/);

    await page.getByTestId('history-channel').fill('group:ops');
    await page.getByTestId('history-channel').press('Enter');
    await eventually(async () => assert.match(await text('history-result'), /20 kept message\(s\) shown/), WAIT);
    await page.screenshot({ path: `${OUTPUT_DIR}admin-dashboard.png`, fullPage: true });
  });

  it('publishes only once confirmed', async () => {
    const carol = clients.find((c) => c.frames.some((f) => f.type === 'welcome' && f.user === 'carol'))!;
    await page.getByTestId('publish-channel').fill('group:ops');
    await page.getByTestId('publish-topic').fill('notice');
    await page.getByTestId('publish-data').fill('{"text":"from the admin"}');
    await page.getByTestId('publish-form').getByRole('button').click();
    await page.getByTestId('confirm').waitFor({ state: 'visible' });
    assert.match(await text('confirm-text'), /Publish "notice" to group:ops\?/);
    await page.screenshot({ path: `${OUTPUT_DIR}admin-confirm.png` });
    await page.getByTestId('confirm-cancel').click();
    await eventually(async () => assert.equal(await text('publish-result'), 'Not published'), WAIT);
    await page.getByTestId('publish-form').getByRole('button').click();
    await page.getByTestId('confirm-ok').click();
    await eventually(async () => assert.match(await text('publish-result'), /Published to group:ops at offset \d+/), WAIT);
    const msg = await carol.next((f) => f.type === 'message' && f.topic === 'notice');
    assert.deepEqual(msg.data, { text: 'from the admin' });
    assert.equal(carol.frames.filter((f) => f.type === 'message' && f.topic === 'notice').length, 1, 'the cancelled one was not sent');
  });

  it('disconnects a user on every node only once confirmed', async () => {
    const bobs = clients.filter((c) => c.frames.some((f) => f.type === 'welcome' && f.user === 'bob'));
    await page.getByTestId('disconnect-user').fill('bob');
    await page.getByTestId('disconnect-form').getByRole('button').click();
    await page.getByTestId('confirm-cancel').click();
    await eventually(async () => assert.equal(await text('disconnect-result'), 'Nobody was disconnected'), WAIT);
    assert.ok(bobs.every((b) => b.closeCode === undefined));
    await page.getByTestId('disconnect-form').getByRole('button').click();
    await page.getByTestId('confirm-ok').click();
    await eventually(async () => assert.match(await text('disconnect-result'), /Disconnected bob: 2 session\(s\) closed/), WAIT);
    for (const bob of bobs) assert.equal((await bob.closed).code, 4003);
    await eventually(async () => assert.equal(await text('total-connections'), String(realConnections())), WAIT);
    assert.equal(realConnections(), 4);
  });

  it('takes the key from #key=… on a node, clears it from the address bar, and no log has it', async () => {
    const direct = await openPage(`${n1.url}/admin#key=${API_KEY}`);
    await direct.getByTestId('dashboard').waitFor({ state: 'visible' });
    assert.equal(new URL(direct.url()).hash, '');
    await eventually(async () => assert.equal(await direct.getByTestId('total-nodes').innerText(), '2'), WAIT);
    const logs = n1.logs.join('\n');
    assert.match(logs, /\/admin/, 'the node logged the page request (debug)');
    assert.ok(!logs.includes(API_KEY), 'the key is in no log line');
    await direct.getByTestId('lock').click();
    await direct.getByTestId('unlock-key').waitFor();
    assert.equal(await direct.getByTestId('dashboard').isHidden(), true);
    await direct.reload();
    await direct.getByTestId('unlock-key').waitFor();
    assert.equal(await direct.getByTestId('dashboard').isHidden(), true, 'locked stays locked after a reload');
    await direct.context().close();
  });

  it('broke no content-security rule and reached nothing outside the server', () => {
    // Chromium logs every failed load: the one 401 is the wrong key's.
    const refused = problems.filter((p) => /status of 401/.test(p));
    assert.equal(refused.length, 1);
    assert.deepEqual(
      problems.filter((p) => !refused.includes(p)),
      [],
    );
  });
});
