#!/usr/bin/env node
// Takes the README's screenshots of the web view (docs/web-list.png, docs/web-detail.png) with
// Debian's Chromium: `tlstap replay` of a recording with --web, then the list and one exchange.
// Usage: node scripts/web-screenshots.js [RECORDING]   (after npm run build)
import { spawn } from 'node:child_process';
import { launchChromium } from '../dist/test/support/browser.js';
import { waitFor, webUrl } from '../dist/test/support/web-view.js';

const recording = process.argv[2] ?? 'fixtures/recordings/clients.tlstap';
const tlstap = spawn(process.execPath, ['dist/src/cli.js', 'replay', recording, '-f', 'none', '--web'], { stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
tlstap.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
const browser = await launchChromium();
try {
  await waitFor(() => stderr, /web view stays/);
  const page = browser.page;
  await page.setViewportSize({ width: 1280, height: 560 });
  await page.goto(webUrl(stderr));
  await page.waitForSelector('body[data-ready="1"] .row');
  await page.screenshot({ path: 'docs/web-list.png' });
  await page.click('.row[data-seq="4"]');
  await page.waitForSelector('#responseBody pre.body');
  await page.screenshot({ path: 'docs/web-detail.png' });
} finally {
  await browser.close();
  tlstap.kill('SIGINT');
}
