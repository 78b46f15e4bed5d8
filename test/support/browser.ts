// Debian's Chromium, headless, driven with playwright-core (no browser download): for the web view tests.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';

/** Debian's chromium (apt package chromium, installed by scripts/setup.sh). */
export const CHROMIUM = '/usr/bin/chromium';

/** A headless Chromium with a fresh profile; close() removes the profile. */
export interface HeadlessChromium {
  context: BrowserContext;
  /** The window's page (a second, background page would get no animation frames). */
  page: Page;
  close(): Promise<void>;
}

/** Starts Debian's Chromium headless, with no network of its own beyond the pages it is sent to. */
export async function launchChromium(): Promise<HeadlessChromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh installs it)`);
  const profile = mkdtempSync(join(tmpdir(), 'tlstap-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1400, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
