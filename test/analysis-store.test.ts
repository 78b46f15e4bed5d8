// Analyses kept on disk between runs (src/targets/analysis-store.ts): used only for the very same file
// and build, by root, from a directory and file that only root can write; anything else is ignored.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnalysisStore, STORE_FILE_NAME } from '../src/targets/analysis-store.js';
import { clearAnalysisCache } from '../src/targets/analyze.js';
import { fileTarget } from '../src/targets/discover.js';
import { requireRoot } from './support/privileges.js';

const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';

/** A private directory (root's, 0700) to hold a store directory, and a copy of libssl in it. */
function setUp(t: TestContext): { parent: string; storeDir: string; lib: string } | undefined {
  if (!requireRoot(t)) return undefined;
  const parent = mkdtempSync(join(tmpdir(), 'tlstap-store-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const lib = join(parent, 'libssl.so.3');
  copyFileSync(LIBSSL, lib);
  return { parent, storeDir: join(parent, 'cache'), lib };
}

/** SSL_write's file offset in `lib` as discovery finds it with `store` (nothing kept in memory). */
async function sslWriteOffset(lib: string, store: AnalysisStore | undefined): Promise<bigint> {
  clearAnalysisCache();
  const target = await fileTarget(lib, 'lib-option', { flavour: false, store });
  store?.save();
  return target.functions.find((f) => f.name === 'SSL_write')!.fileOffset;
}

/** Rewrites every stored SSL_write offset to `offset` (as an attacker or a bug might). */
function rewriteStored(storeDir: string, edit: (entry: { functions: { name: string; fileOffset: string }[] }) => void): void {
  const file = join(storeDir, STORE_FILE_NAME);
  const data = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, { functions: { name: string; fileOffset: string }[] }> };
  for (const entry of Object.values(data.entries)) edit(entry);
  writeFileSync(file, JSON.stringify(data), { mode: 0o600 });
}

test('a stored analysis is used for the very same file, and a file changed since is looked into again', async (t) => {
  const s = setUp(t);
  if (s === undefined) return;
  const real = await sslWriteOffset(s.lib, undefined);
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), real);
  const dir = statSync(s.storeDir);
  assert.equal(dir.mode & 0o777, 0o700);
  assert.equal(statSync(join(s.storeDir, STORE_FILE_NAME)).mode & 0o777, 0o600);

  // The store is what is read: an edited offset (still inside the file) comes back...
  rewriteStored(s.storeDir, (e) => e.functions.forEach((f) => f.name === 'SSL_write' && (f.fileOffset = '4096')));
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), 4096n);
  // ...until the file's identity changes: utimes back to the same mtime still moves its ctime.
  const st = statSync(s.lib);
  utimesSync(s.lib, st.atime, st.mtime);
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), real);
});

test('a store file with an entry that does not check out is ignored as a whole', async (t) => {
  const s = setUp(t);
  if (s === undefined) return;
  const real = await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir));
  const size = statSync(s.lib).size;
  for (const bad of [String(size), '-1', 'nonsense']) {
    rewriteStored(s.storeDir, (e) => e.functions.forEach((f) => f.name === 'SSL_write' && (f.fileOffset = bad)));
    const reasons: string[] = [];
    assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir, (why) => reasons.push(why))), real, bad);
    assert.match(reasons.join('\n'), /does not check out/, bad);
  }
  rewriteStored(s.storeDir, (e) => e.functions.forEach((f) => f.name === 'SSL_write' && (f.name = 'system')));
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), real);
});

test('a store directory or file that others could have written is not used', async (t) => {
  const s = setUp(t);
  if (s === undefined) return;
  const real = await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir));
  const file = join(s.storeDir, STORE_FILE_NAME);
  const poison = () => rewriteStored(s.storeDir, (e) => e.functions.forEach((f) => f.name === 'SSL_write' && (f.fileOffset = '4096')));

  // A file another user owns, or one that others can write.
  poison();
  chownSync(file, 65534, 65534);
  const reasons: string[] = [];
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir, (why) => reasons.push(why))), real);
  assert.match(reasons.join('\n'), /not a regular file owned by uid 0 with mode 0600/);
  rmSync(file);
  await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir));
  poison();
  chmodSync(file, 0o606);
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), real);

  // A symlink in the file's place is not followed.
  rmSync(file);
  const elsewhere = join(s.parent, 'elsewhere.json');
  await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir));
  poison();
  copyFileSync(file, elsewhere);
  rmSync(file);
  symlinkSync(elsewhere, file);
  assert.equal(await sslWriteOffset(s.lib, AnalysisStore.open(s.storeDir)), real);
  rmSync(file);

  // A directory others can enter or write, or one in a directory others can write.
  chmodSync(s.storeDir, 0o755);
  const dirReasons: string[] = [];
  assert.equal(AnalysisStore.open(s.storeDir, (why) => dirReasons.push(why)), undefined);
  assert.match(dirReasons.join('\n'), /not a directory owned by uid 0 with mode 0700/);
  const shared = join(s.parent, 'shared');
  mkdirSync(shared, { mode: 0o777 });
  chmodSync(shared, 0o777);
  assert.equal(AnalysisStore.open(join(shared, 'cache')), undefined);
});
