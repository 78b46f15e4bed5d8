// Android discovery (src/targets/android.ts) on a fixture Android root served by tlstap-agent --root:
// conscrypt's and the platform's BoringSSL, an app's extracted OpenSSL, BoringSSL mapped straight from
// an APK, every process's maps, --package by uid across Android users, 32-bit code counted and skipped.
import { after, before, describe, it } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ElfFile, sliceFile, withElfFile } from '../src/elf/index.js';
import { AgentConnection, AgentView, agentBinary, localView } from '../src/remote/index.js';
import type { FileView } from '../src/remote/index.js';
import { androidTargets, linuxLayout, parsePackagesList, uidFromStatus } from '../src/targets/android.js';
import type { AndroidDiscovery } from '../src/targets/android.js';
import { apkLibraries } from '../src/targets/apk.js';
import { TargetError } from '../src/targets/errors.js';
import { packageUid } from '../src/commands/remote-host.js';
import { CliError } from '../src/commands/errors.js';
import type { CaptureOptions } from '../src/commands/options.js';
import { requireRoot } from './support/privileges.js';
import { APPS, PATHS, SOURCES, apkLibraryBase, makeAndroidRoot } from './support/android-root.js';

const QEMU = '/usr/bin/qemu-aarch64-static';

/** Serves `root` with an agent binary (under qemu for arm64) over a pipe. */
function serve(root: string, argv: string[]) {
  const child = spawn(argv[0]!, [...argv.slice(1), '--root', root], { stdio: ['pipe', 'pipe', 'inherit'] });
  const connection = AgentConnection.over(child.stdin, child.stdout);
  return { child, connection, view: new AgentView(connection, 'fixture') };
}

/** What a discovery says, in a form to compare: path, base, pids, flavour and function offsets. */
function summary(d: AndroidDiscovery) {
  return {
    targets: d.targets.map((t) => ({
      displayPath: t.displayPath,
      path: t.path,
      base: t.base,
      pids: t.pids,
      flavour: t.flavour,
      version: t.version,
      functions: t.functions.map((f) => `${f.name}@${f.fileOffset}`),
    })),
    uids: d.uids,
    skipped32: d.skipped32,
    skipped: d.skipped,
  };
}

/** The offsets the plain ELF reader finds in the Debian file, moved by `base`. */
async function offsetsOf(path: string, base: number): Promise<string[]> {
  return withElfFile(path, async (elf) => {
    const names = ['SSL_read', 'SSL_write', 'SSL_read_ex', 'SSL_write_ex', 'SSL_set_fd', 'SSL_set_rfd', 'SSL_set_wfd', 'SSL_shutdown', 'SSL_free'];
    const found = await elf.findFunctions(names);
    return names.filter((n) => found.has(n)).map((n) => `${n}@${found.get(n)!.fileOffset + BigInt(base)}`);
  });
}

describe('Android discovery on a fixture root served by the agent', () => {
  let dir: string;
  let root: string;
  let agent: ReturnType<typeof serve>;
  before(async () => {
    for (const path of Object.values(SOURCES)) {
      assert.ok(existsSync(path), `${path} is missing: run \`bash scripts/setup.sh\` (libssl3:arm64, android-libboringssl:arm64)`);
    }
    dir = await mkdtemp(join(tmpdir(), 'tlstap-android-'));
    root = join(dir, 'root');
    await mkdir(root);
    await makeAndroidRoot(root);
    agent = serve(root, [agentBinary('x86_64')]);
  });
  after(async () => {
    await agent?.connection.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('finds conscrypt, the platform, an app library and a library inside an APK, with every process mapping them', async (t) => {
    const found = summary(await androidTargets(agent.view));
    const base = apkLibraryBase(root);
    t.diagnostic(`the APK's arm64 libssl.so starts at byte ${base} of ${PATHS.bankApk}`);
    assert.deepEqual(
      found.targets.map((x) => [x.displayPath, x.base, x.pids, x.flavour]),
      [
        [PATHS.conscrypt, 0n, [2001, 2003], 'BoringSSL'],
        [`${PATHS.bankApk}!/${PATHS.bankEntry}`, BigInt(base), [2002], 'BoringSSL'],
        [PATHS.shopLib, 0n, [2001], 'OpenSSL'],
        [PATHS.platform, 0n, [], 'BoringSSL'],
      ],
    );
    // The probe sits in the APK file itself, at the function's offset in the ELF plus the ELF's place in the zip.
    const inApk = found.targets[1]!;
    assert.equal(inApk.path, PATHS.bankApk);
    assert.deepEqual(inApk.functions, await offsetsOf(SOURCES.boringSsl, base));
    assert.deepEqual(found.targets[0]!.functions, await offsetsOf(SOURCES.boringSsl, 0));
    assert.deepEqual(found.targets[2]!.functions, await offsetsOf(SOURCES.openSsl, 0));
    assert.match(found.targets[2]!.version ?? '', /^3\.\d+\.\d+/);
    // 32-bit: the legacy app's process; conscrypt's and the platform's lib/, the shop's lib/arm, the APK's armeabi-v7a entry.
    assert.deepEqual(found.skipped32, { processes: 1, libraries: 4 });
    assert.deepEqual(found.skipped, []);
    assert.deepEqual(found.uids, []);
  });

  it('--package keeps that app in every Android user, and the system libraries it uses', async () => {
    const found = await androidTargets(agent.view, { package: 'com.example.shop' });
    assert.deepEqual(
      found.targets.map((x) => [x.displayPath, x.pids]),
      [
        [PATHS.conscrypt, [2001, 2003]],
        [PATHS.shopLib, [2001]],
        [PATHS.platform, []],
      ],
    );
    assert.deepEqual(found.uids, [APPS.shop, 10 * 100000 + APPS.shop]);
    assert.deepEqual(found.skipped32, { processes: 0, libraries: 3 });

    const bank = await androidTargets(agent.view, { package: 'com.example.bank' });
    assert.deepEqual(bank.targets.map((x) => [x.displayPath, x.pids]), [
      [PATHS.conscrypt, []],
      [`${PATHS.bankApk}!/${PATHS.bankEntry}`, [2002]],
      [PATHS.platform, []],
    ]);
    assert.deepEqual(bank.uids, [APPS.bank]);
  });

  it("--package gives the kernel the app's one uid: the Android user running it, else user 0; two users need --uid", async () => {
    const opts = (pkg: string, uid?: number) => ({ package: pkg, uid }) as CaptureOptions;
    const notes: string[] = [];
    const bank = await androidTargets(agent.view, { package: 'com.example.bank' });
    assert.deepEqual(packageUid(bank, opts('com.example.bank'), (l) => notes.push(l)), { uid: APPS.bank });
    // The legacy app runs only as a 32-bit process (skipped): none of its uids is seen, user 0's is taken.
    const legacy = await androidTargets(agent.view, { package: 'com.example.legacy' });
    assert.deepEqual(packageUid(legacy, opts('com.example.legacy'), (l) => notes.push(l)), { uid: APPS.legacy });
    assert.match(notes.join('\n'), new RegExp(`com\\.example\\.legacy is not running; capturing its uid ${APPS.legacy} \\(Android user 0\\)`));
    const shop = await androidTargets(agent.view, { package: 'com.example.shop' });
    assert.throws(
      () => packageUid(shop, opts('com.example.shop'), () => undefined),
      (err: unknown) => err instanceof CliError && /runs in 2 Android users \(uids 10123, 1010123\)/.test(err.message) && err.hint === 'choose one with --uid, e.g. --uid 10123',
    );
    assert.deepEqual(packageUid(shop, opts('com.example.shop', 1010123), () => undefined), {}, '--uid chooses');
  });

  it('an unknown package is an error that says how to list them', async () => {
    await assert.rejects(
      androidTargets(agent.view, { package: 'com.example.nothere' }),
      (err: unknown) => err instanceof TargetError && /no package com.example.nothere in \/data\/system\/packages.list/.test(err.message) && /pm list packages/.test(err.hint ?? ''),
    );
  });

  it('the agent and a local view of the same root agree', async () => {
    assert.deepEqual(summary(await androidTargets(localView(root))), summary(await androidTargets(agent.view)));
  });

  it('the arm64 agent under qemu-user serves the same discovery', async (t) => {
    if (!existsSync(QEMU)) assert.fail(`${QEMU} is missing: run \`bash scripts/setup.sh\` (qemu-user-static)`);
    const arm = serve(root, [QEMU, agentBinary('aarch64')]);
    try {
      const started = Date.now();
      const found = summary(await androidTargets(arm.view));
      t.diagnostic(`discovery through the emulated arm64 agent: ${Date.now() - started} ms`);
      assert.deepEqual(found, summary(await androidTargets(agent.view)));
    } finally {
      await arm.connection.close();
    }
  });
});

describe('Android pieces', () => {
  it('packages.list: name and app id per line; uid = user * 100000 + app id', () => {
    const list = parsePackagesList('com.a 10001 0 /data/user/0/com.a default 3003\n\ngarbage\ncom.b 10002 1 /data/user/0/com.b default none\n');
    assert.deepEqual([...list.values()], [{ name: 'com.a', appId: 10001 }, { name: 'com.b', appId: 10002 }]);
    assert.equal(uidFromStatus('Name:\tx\nUid:\t1010001\t1010001\t1010001\t1010001\n'), 1010001);
    assert.equal(uidFromStatus('Name:\tkthreadd\n'), undefined);
  });

  it('an APK\'s stored libraries: names, ABIs and where their bytes start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tlstap-apk-'));
    try {
      const root = join(dir, 'root');
      await mkdir(root);
      await makeAndroidRoot(root);
      const view: FileView = localView(root);
      const file = await view.openFile(PATHS.bankApk);
      const libs = await apkLibraries(file);
      assert.deepEqual(libs.map((l) => [l.name, l.abi, l.method]).sort(), [
        ['lib/arm64-v8a/libcrypto.so', 'arm64-v8a', 0],
        ['lib/arm64-v8a/libssl.so', 'arm64-v8a', 0],
        ['lib/armeabi-v7a/libssl.so', 'armeabi-v7a', 0],
      ]);
      const ssl = libs.find((l) => l.name === PATHS.bankEntry)!;
      assert.equal(ssl.dataOffset, apkLibraryBase(root));
      const elf = await ElfFile.openFile('in the APK', sliceFile(file, ssl.dataOffset, ssl.size));
      assert.equal(elf.machineName, 'aarch64');
      await elf.close();
      await assert.rejects(apkLibraries(await view.openFile('/system/bin/app_process64')), /not a zip/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Linux discovery through the agent: the very file each process maps', () => {
  const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
  let dir: string;
  let agent: ReturnType<typeof serve>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tlstap-view-procs-'));
    agent = serve('/', [agentBinary('x86_64')]);
  });
  after(async () => {
    agent.child.stdin.end();
    await new Promise((resolve) => agent.child.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs `script` in `sh`, in its own mount namespace when `unshare`, until it prints "ready". */
  async function started(script: string, unshare: boolean) {
    const argv = unshare ? ['unshare', '-m', 'sh', '-c', script] : ['sh', '-c', script];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      child.stdout.on('data', (b: Buffer) => (seen += b.toString()).includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`exited (${code}) before it was ready: ${seen}`)));
    });
    return child;
  }

  it('a process in its own mount namespace: its own libssl, through /proc/PID/root', async (t) => {
    if (!requireRoot(t)) return;
    const copy = join(dir, 'libssl.so.3');
    await copyFile(LIBSSL, copy);
    // Inside the namespace the copy is mounted over the system libssl: same path, another file.
    const child = await started(`mount --bind ${copy} ${LIBSSL} && exec /usr/bin/python3 -c 'import ssl, time; print("ready", flush=True); time.sleep(30)'`, true);
    try {
      const found = await androidTargets(agent.view, { pid: child.pid!, layout: linuxLayout('x86_64') });
      const want = await stat(copy, { bigint: true });
      const mine = found.targets.filter((x) => x.dev === want.dev && x.ino === want.ino);
      assert.deepEqual(mine.map((x) => x.path), [`/proc/${child.pid!}/root${LIBSSL}`], found.targets.map((x) => x.path).join(', '));
      const host = await stat(LIBSSL, { bigint: true });
      assert.ok(!found.targets.some((x) => x.dev === host.dev && x.ino === host.ino), 'the host libssl, which the process does not map');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a library deleted after it was mapped: through /proc/PID/map_files', async (t) => {
    if (!requireRoot(t)) return;
    const copy = join(dir, 'gone', 'libssl.so.3');
    await mkdir(join(dir, 'gone'));
    await copyFile(LIBSSL, copy);
    const want = await stat(copy, { bigint: true });
    const child = await started(`LD_PRELOAD=${copy} exec /usr/bin/python3 -c 'import ssl, time; print("ready", flush=True); time.sleep(30)'`, false);
    try {
      await unlink(copy);
      const found = await androidTargets(agent.view, { pid: child.pid!, layout: linuxLayout('x86_64') });
      const gone = found.targets.filter((x) => x.dev === want.dev && x.ino === want.ino);
      assert.equal(gone.length, 1, found.targets.map((x) => x.path).join(', '));
      assert.match(gone[0]!.path, new RegExp(`^/proc/${child.pid!}/map_files/[0-9a-f]+-[0-9a-f]+$`));
      assert.ok(gone[0]!.functions.some((f) => f.name === 'SSL_write'));
    } finally {
      child.kill('SIGKILL');
    }
  });
});
