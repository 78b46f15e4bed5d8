// The web view during a real capture, as a user sees it in Chromium: curl fetches from nginx over
// HTTP/1.1 and HTTP/2; the exchanges appear live, the filter narrows them, the detail pane shows
// the headers and the exact body bytes, the HAR download equals --har, and nothing works without
// the token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curlFetch } from '../src/demo/clients.js';
import { launchChromium } from './support/browser.js';
import { startNginx } from './support/nginx.js';
import { requireRoot } from './support/privileges.js';
import { startTlstap } from './support/tlstap-process.js';
import { waitFor, webUrl } from './support/web-view.js';

const BINARY = randomBytes(777);
const FILES = {
  'a.txt': 'the body of /a, over HTTP/1.1\n',
  'c.json': '{"ok":true,"list":[1,2,3],"from":"nginx over HTTP/2"}\n',
  'bin.dat': BINARY,
};

/** The bytes of a hexdump as the page shows it (offset, 16 hex bytes, ascii). */
function parseHexdump(text: string): Buffer {
  const bytes: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^[0-9a-f]{8} {2}((?:[0-9a-f]{2} ?)+)/.exec(line);
    if (m) for (const h of m[1]!.trim().split(' ')) bytes.push(parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

/** A GET with exactly these headers (fetch would not send a Host of ours). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    }).on('error', reject);
  });
}

test('curl over HTTP/1.1 and HTTP/2 in Chromium: live rows, filter, headers, exact bodies, HAR = --har, 403 without the token', async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-web-e2e-'));
  const spoolParent = join(dir, 'tmp');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(spoolParent);
  const nginx = await startNginx({ files: FILES });
  const har = join(dir, 'run.har');
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = spoolParent; // the spool goes here, so the test can see it and its removal
  const tlstap = await startTlstap(['--comm', 'curl', '-f', 'none', '--har', har, '--redact', '--web', '127.0.0.1:0']).finally(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
  });
  const browser = await launchChromium();
  try {
    const url = webUrl(tlstap.stderr());
    assert.ok(url, `tlstap prints the web view URL:\n${tlstap.stderr()}`);
    const base = url.slice(0, url.indexOf('?'));
    const token = new URL(url).searchParams.get('token')!;
    assert.match(token, /^[A-Za-z0-9_-]{20,}$/);

    // The spool is a private file.
    const [spoolDir] = readdirSync(spoolParent).filter((n) => n.startsWith('tlstap-web-'));
    assert.ok(spoolDir, 'a spool directory exists while capturing');
    assert.equal(statSync(join(spoolParent, spoolDir, 'spool')).mode & 0o777, 0o600);

    // Without the token, or from another origin, or through another Host name: 403.
    for (const [path, headers] of [
      ['/', {}],
      ['/api/rows?after=0', {}],
      ['/api/rows?after=0&token=wrong', {}],
      [`/api/rows?after=0&token=${token}`, { origin: 'http://evil.example' }],
      [`/api/rows?after=0&token=${token}`, { host: 'evil.example' }],
    ] as const) {
      const res = await get(`${base}${path.slice(1)}`, headers);
      assert.equal(res.status, 403, `${path} ${JSON.stringify(headers)}`);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    }
    assert.equal((await get(`${base}api/rows?after=0&token=${token}`)).status, 200);

    const page = browser.page;
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]');
    assert.equal(await page.getAttribute('body', 'data-shown'), '0');

    // Live: each exchange shows up while tlstap is still capturing.
    const h1 = await curlFetch(`${nginx.url}/a.txt`, { extraArgs: ['-H', 'Authorization: Bearer secret-token-123'] });
    assert.equal(h1.exitCode, 0, h1.stderr);
    await page.waitForFunction(() => document.body.dataset.shown === '1', undefined, { timeout: 30_000 });
    const h2 = await curlFetch(`${nginx.url}/c.json`, { http1_1: false, extraArgs: ['--http2', `${nginx.url}/bin.dat`, '-o', '/dev/null'] });
    assert.equal(h2.exitCode, 0, h2.stderr);
    await page.waitForFunction(() => document.body.dataset.shown === '3', undefined, { timeout: 30_000 });
    const cells = await page.$$eval('.row', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
    assert.deepEqual(cells.map((c) => [c[1], c[3], c[5], c[6], c[9]]).sort(), [
      ['curl', 'GET', '/a.txt', '200', 'h1.1'],
      ['curl', 'GET', '/bin.dat', '200', 'h2'],
      ['curl', 'GET', '/c.json', '200', 'h2'],
    ]);

    // The filter narrows the list; clearing it brings every row back.
    await page.fill('#filter', 'proto:h2 path:json');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '1');
    assert.deepEqual(await page.$$eval('.row div:nth-child(6)', (d) => d.map((x) => x.textContent)), ['/c.json']);

    // The detail pane: headers, stream id, the body as pretty JSON and as text, byte for byte.
    await page.click('.row');
    await page.waitForSelector('#responseBody pre.body');
    await page.click('#responseBody button[data-mode="json"]');
    const detail = await page.textContent('#detail');
    assert.match(detail!, /HTTP\/2 · stream \d+/);
    assert.match(detail!, /server\s*nginx/i);
    assert.match(detail!, new RegExp(`content-length\\s*${Buffer.byteLength(FILES['c.json'])}`, 'i'));
    assert.equal(await page.textContent('#responseBody pre.body'), JSON.stringify(JSON.parse(FILES['c.json']), null, 2));
    await page.click('#responseBody button[data-mode="text"]');
    assert.equal(await page.textContent('#responseBody pre.body'), FILES['c.json']);

    // A binary body, byte for byte from the hex view.
    await page.fill('#filter', 'bin.dat');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '1');
    await page.click('.row');
    await page.waitForSelector('#responseBody pre.body[data-mode="hex"]');
    assert.ok(parseHexdump((await page.textContent('#responseBody pre.body'))!).equals(BINARY), 'the hex view shows the exact bytes nginx sent');

    // --redact applies: the Authorization header is masked in the pane and not searchable.
    await page.fill('#filter', 'a.txt');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '1');
    await page.click('.row');
    await page.waitForSelector('#responseBody pre.body');
    const h1Detail = (await page.textContent('#detail'))!;
    assert.match(h1Detail, /HTTP\/1\.1/);
    assert.match(h1Detail, /Authorization.{0,20}REDACTED/);
    assert.doesNotMatch(h1Detail, /secret-token-123/);
    assert.equal(await page.textContent('#responseBody pre.body'), FILES['a.txt']);
    await page.fill('#filter', 'text:secret-token-123');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '0');
    await page.fill('#filter', 'text:"list":[1,2,3]');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '1');

    // The capture stops; the view stays, and its HAR of every row equals --har's.
    tlstap.child.kill('SIGINT');
    const written = await waitFor(tlstap.stderr, /HAR with (\d+) entries written/);
    assert.equal(written[1], '3', tlstap.stderr());
    await page.waitForSelector('#live:text("input ended")');
    await page.fill('#filter', '');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '3');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#har')]);
    const fromPage = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { log: { entries: unknown[]; creator: unknown } };
    const fromFile = JSON.parse(readFileSync(har, 'utf8')) as { log: { entries: unknown[]; creator: unknown } };
    assert.equal(fromFile.log.entries.length, 3);
    assert.deepEqual(fromPage.log.entries, fromFile.log.entries);
    assert.deepEqual(fromPage.log.creator, fromFile.log.creator);
    // pcapng of the filtered exchanges' connection: tshark reads it, and the JSON body is in it.
    await page.fill('#filter', 'path:c.json');
    await page.press('#filter', 'Enter');
    await page.waitForFunction(() => document.body.dataset.shown === '1');
    const [pcap] = await Promise.all([page.waitForEvent('download'), page.click('#pcapng')]);
    const pcapPath = (await pcap.path())!;
    const pcapBytes = readFileSync(pcapPath);
    assert.equal(pcapBytes.readUInt32LE(0), 0x0a0d0d0a, 'a pcapng section header');
    assert.ok(pcapBytes.includes(Buffer.from(FILES['c.json'])), 'the HTTP/2 connection of /c.json is in it');
    assert.ok(!pcapBytes.includes(Buffer.from(FILES['a.txt'])), 'the HTTP/1.1 connection is not');
    const tshark = spawnSync('tshark', ['-r', pcapPath, '-q', '-z', 'conv,tcp'], { encoding: 'utf8' });
    assert.equal(tshark.status, 0, tshark.stderr);
    assert.equal((tshark.stdout.match(/<->/g) ?? []).length, 1, tshark.stdout);
    assert.deepEqual(errors, []);

    // Ctrl-C again: the server stops and the spool is gone.
    tlstap.child.kill('SIGINT');
    const exit = await tlstap.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.deepEqual(readdirSync(spoolParent).filter((n) => n.startsWith('tlstap-web-')), [], 'the spool is removed at exit');
  } finally {
    await browser.close();
    await tlstap.stop('SIGKILL');
    await nginx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
