/**
 * Debian's Chromium for the browser tests (the demo page, the SDK bundles), driven by
 * playwright-core. Locally a machine without Chromium skips; CI installs it, so there a missing
 * browser is a failure.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const OUTPUT_DIR = fileURLToPath(new URL('../../../test-output/', import.meta.url));

/** The `skip` of a browser suite: a reason outside CI when Chromium is absent, else false. */
export const browserSkip: string | false =
  process.env.CI !== 'true' && !existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing: run "apt-get install -y chromium" to run the browser test`
    : false;

/** Launches headless Chromium with the flags this closed network needs. */
export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: CI must install it (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Opens a tab in a fresh context (its own storage and network) for `user`, records it in
 * `contexts`/`pages`, and collects its uncaught page errors into `errors`.
 */
export async function openTab(
  browser: Browser,
  user: string,
  viewport: { width: number; height: number },
  into: { contexts: Record<string, BrowserContext>; pages: Record<string, Page>; errors: string[] },
): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', (err) => into.errors.push(`${user}: ${err.message}`));
  into.contexts[user] = context;
  into.pages[user] = page;
  return page;
}
