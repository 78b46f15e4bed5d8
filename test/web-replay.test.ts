// The web view with 100 000 exchanges: `tlstap replay FILE --web` of a recording made here (1 000
// keep-alive connections of 100 exchanges each) opens in Chromium; the list scrolls and filters
// within a second (figures printed), and tlstap stays under 300 MB resident.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchChromium } from './support/browser.js';
import { writeHttpRecording } from './support/http-recording.js';
import { CLI } from './support/tlstap-process.js';
import { rssBytes, waitFor, webUrl } from './support/web-view.js';

const CONNECTIONS = 1000;
const PER_CONNECTION = 100;
const TOTAL = CONNECTIONS * PER_CONNECTION;

test('a replay of 100 000 exchanges opens in Chromium; the list scrolls and filters within a second; RSS < 300 MB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-web-100k-'));
  const recording = join(dir, 'big.tlstap');
  await writeHttpRecording(recording, CONNECTIONS, PER_CONNECTION);
  const child = spawn(process.execPath, [CLI, 'replay', recording, '-f', 'none', '--web'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const browser = await launchChromium();
  try {
    await waitFor(() => stderr, new RegExp(`http: ${TOTAL} exchanges`), 300_000);
    const url = webUrl(stderr)!;
    const page = browser.page;
    const opened = performance.now();
    await page.goto(url);
    await page.waitForFunction((n) => document.body.dataset.shown === String(n), TOTAL, { timeout: 120_000 });
    const openMs = performance.now() - opened;

    // Scroll to the middle: the rows there are rendered, and only a screenful of them.
    const scroll = await page.evaluate(async () => {
      const scroller = document.getElementById('scroller')!;
      const t0 = performance.now();
      scroller.scrollTop = scroller.scrollHeight / 2;
      const seqs = () => [...document.querySelectorAll('.row')].map((r) => Number((r as HTMLElement).dataset.seq));
      // Until the rows at the new place are drawn (at most 10 s).
      while (!seqs().some((s) => s > 40_000) && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 2));
      return { ms: performance.now() - t0, rows: seqs() };
    });
    assert.ok(scroll.rows.length > 10 && scroll.rows.length < 200, `a window of rows is rendered (${scroll.rows.length})`);
    assert.ok(scroll.rows.some((s) => Math.abs(s - TOTAL / 2) < 100), `rows near the middle are shown: ${scroll.rows.slice(0, 5).join(',')}`);

    // Filter on a column: the count is the one the data says.
    const expected = Array.from({ length: TOTAL }, (_, n) => `/item/${n}`).filter((p) => p.includes('/item/4242')).length;
    const filter = await page.evaluate(async (want) => {
      const box = document.getElementById('filter') as HTMLInputElement;
      const t0 = performance.now();
      box.value = 'path:/item/4242';
      box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
      while (document.body.dataset.shown !== String(want) && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 0));
      return { ms: performance.now() - t0, shown: Number(document.body.dataset.shown) };
    }, expected);
    assert.equal(filter.shown, expected);
    const status = await page.evaluate(async () => {
      const box = document.getElementById('filter') as HTMLInputElement;
      const t0 = performance.now();
      const before = document.body.dataset.shown;
      box.value = 'status:404 process:curl';
      box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
      while (document.body.dataset.shown === before && performance.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
      return { ms: performance.now() - t0, shown: Number(document.body.dataset.shown) };
    });
    let want404 = 0;
    for (let n = 0; n < TOTAL; n++) if (n % 50 === 0 && Math.floor(n / PER_CONNECTION) % 7 === 0) want404++;
    assert.equal(status.shown, want404);
    // Sorting by size, descending, over everything.
    const sort = await page.evaluate(async () => {
      const box = document.getElementById('filter') as HTMLInputElement;
      box.value = '';
      box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
      for (const t = performance.now(); document.body.dataset.shown !== '100000' && performance.now() - t < 30_000; ) await new Promise((r) => setTimeout(r, 5));
      const head = document.querySelector('.thead [data-key="size"]') as HTMLElement;
      const t0 = performance.now();
      head.click();
      head.ownerDocument.querySelector<HTMLElement>('.thead [data-key="size"]')!.click();
      await new Promise((r) => setTimeout(r, 0));
      return performance.now() - t0;
    });
    const rss = rssBytes(child.pid!, (p) => readFileSync(p, 'utf8'));
    process.stdout.write(
      `# web view, ${TOTAL} exchanges: page open ${openMs.toFixed(0)} ms, scroll ${scroll.ms.toFixed(0)} ms, ` +
        `filter ${filter.ms.toFixed(0)} ms, status filter ${status.ms.toFixed(0)} ms, sort ${sort.toFixed(0)} ms, tlstap RSS ${(rss / 1048576).toFixed(0)} MB\n`,
    );
    // Generous bounds on a loaded machine; the figures above are what to look at.
    assert.ok(scroll.ms < 1000, `scroll ${scroll.ms} ms`);
    assert.ok(filter.ms < 1000, `filter ${filter.ms} ms`);
    assert.ok(status.ms < 1000, `status filter ${status.ms} ms`);
    assert.ok(rss < 300 * 1048576, `tlstap RSS ${rss} bytes`);
  } finally {
    await browser.close();
    child.kill('SIGINT');
    await new Promise((r) => child.once('close', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
