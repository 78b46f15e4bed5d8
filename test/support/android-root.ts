// A fixture Android root made from Debian's arm64 packages: conscrypt's and the platform's BoringSSL
// (android-libboringssl:arm64), an app with an extracted arm64 OpenSSL (libssl3:arm64), an app whose
// BoringSSL is stored uncompressed in its APK (zip -0), 32-bit leftovers, packages.list and a /proc
// with maps, status, cmdline and exe for a few processes.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ElfFile } from '../../src/elf/index.js';

/** The Debian files the fixture is made of. */
export const SOURCES = {
  boringSsl: '/usr/lib/aarch64-linux-gnu/android/libssl.so.0',
  boringCrypto: '/usr/lib/aarch64-linux-gnu/android/libcrypto.so.0',
  openSsl: '/usr/lib/aarch64-linux-gnu/libssl.so.3',
  openCrypto: '/usr/lib/aarch64-linux-gnu/libcrypto.so.3',
  /** Any 64-bit arm64 program stands in for app_process64 and init. */
  program64: '/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1',
};

/** Paths inside the fixture root. */
export const PATHS = {
  conscrypt: '/apex/com.android.conscrypt/lib64/libssl.so',
  platform: '/system/lib64/libssl.so',
  shopLib: '/data/app/~~Xy1==/com.example.shop-Ab3==/lib/arm64/libssl.so.3',
  bankApk: '/data/app/com.example.bank-1/base.apk',
  bankEntry: 'lib/arm64-v8a/libssl.so',
};

/** Package names and app ids in packages.list. */
export const APPS = { shop: 10123, bank: 10124, legacy: 10125 };

/** The header of a 32-bit ARM shared object: enough for anything that reads the ELF class. */
function elf32Stub(): Buffer {
  const b = Buffer.alloc(52);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = 1; // ELFCLASS32
  b[5] = 1; // little-endian
  b[6] = 1;
  b.writeUInt16LE(3, 16); // ET_DYN
  b.writeUInt16LE(40, 18); // EM_ARM
  b.writeUInt32LE(1, 20);
  b.writeUInt16LE(52, 40);
  return b;
}

function put(root: string, path: string, data: Buffer | string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), data);
}

function copy(root: string, from: string, path: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  copyFileSync(from, join(root, path));
}

/** Where the first executable PT_LOAD segment starts in an ELF file. */
async function textOffset(path: string): Promise<number> {
  const elf = await ElfFile.open(path);
  try {
    const text = elf.segments.find((s) => s.type === 1 && (s.flags & 1) !== 0);
    return Number(text!.offset);
  } finally {
    await elf.close();
  }
}

/** A line of /proc/PID/maps for `path` under `root`, with that file's real inode, as a kernel shows it. */
function mapsLine(root: string, start: number, size: number, perms: string, offset: number, path: string): string {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return `${(start).toString(16)}-${(start + size).toString(16)} ${perms} ${hex(offset)} fd:05 ${path.startsWith('[') ? 0 : statSync(join(root, path)).ino} ${path}`;
}

function process(root: string, pid: number, uid: number, cmdline: string, exe: string, maps: string[]): void {
  put(root, `/proc/${pid}/status`, `Name:\t${cmdline.slice(0, 15)}\nUmask:\t0077\nState:\tS (sleeping)\nTgid:\t${pid}\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\n`);
  put(root, `/proc/${pid}/cmdline`, `${cmdline}\0`);
  put(root, `/proc/${pid}/maps`, `${maps.join('\n')}\n`);
  // Relative, so that it stays inside the root when the agent (or the kernel) follows it.
  symlinkSync(`../..${exe}`, join(root, `/proc/${pid}/exe`));
}

/** The APK offset where the stored BoringSSL starts, found by its bytes (independently of the zip reader). */
export function apkLibraryBase(root: string): number {
  const apk = readFileSync(join(root, PATHS.bankApk));
  const at = apk.indexOf(readFileSync(SOURCES.boringSsl));
  if (at < 0) throw new Error('the stored library is not in the APK byte for byte');
  return at;
}

/** Makes the fixture Android root in `root` (an empty directory). */
export async function makeAndroidRoot(root: string): Promise<void> {
  copy(root, SOURCES.boringSsl, PATHS.conscrypt);
  copy(root, SOURCES.boringCrypto, '/apex/com.android.conscrypt/lib64/libcrypto.so');
  put(root, '/apex/com.android.conscrypt/lib/libssl.so', elf32Stub());
  copy(root, SOURCES.boringSsl, PATHS.platform);
  copy(root, SOURCES.boringCrypto, '/system/lib64/libcrypto.so');
  put(root, '/system/lib/libssl.so', elf32Stub());
  copy(root, SOURCES.program64, '/system/bin/app_process64');
  copy(root, SOURCES.program64, '/system/bin/init');
  put(root, '/system/bin/app_process32', elf32Stub());

  // An app with its libraries extracted at install (Android 11+ layout), a 32-bit one among them.
  copy(root, SOURCES.openSsl, PATHS.shopLib);
  copy(root, SOURCES.openCrypto, join(dirname(PATHS.shopLib), 'libcrypto.so.3'));
  put(root, '/data/app/~~Xy1==/com.example.shop-Ab3==/lib/arm/libfoo.so', elf32Stub());

  // An app whose libraries stay in the APK, uncompressed (extractNativeLibs=false; older layout).
  const stage = join(root, '..', 'apk-stage');
  mkdirSync(join(stage, 'lib', 'arm64-v8a'), { recursive: true });
  mkdirSync(join(stage, 'lib', 'armeabi-v7a'), { recursive: true });
  writeFileSync(join(stage, 'AndroidManifest.xml'), 'not really binary XML\n'.repeat(50));
  writeFileSync(join(stage, 'classes.dex'), 'dex\n035\0'.repeat(4000));
  copyFileSync(SOURCES.boringSsl, join(stage, 'lib', 'arm64-v8a', 'libssl.so'));
  copyFileSync(SOURCES.boringCrypto, join(stage, 'lib', 'arm64-v8a', 'libcrypto.so'));
  writeFileSync(join(stage, 'lib', 'armeabi-v7a', 'libssl.so'), elf32Stub());
  const apk = join(root, PATHS.bankApk);
  mkdirSync(dirname(apk), { recursive: true });
  execFileSync('zip', ['-q', '-X', apk, 'AndroidManifest.xml', 'classes.dex'], { cwd: stage });
  execFileSync('zip', ['-q', '-X', '-0', '-r', apk, 'lib'], { cwd: stage });
  // The extracting app's APK holds no native library any more.
  execFileSync('zip', ['-q', '-X', join(root, '/data/app/~~Xy1==/com.example.shop-Ab3==/base.apk'), 'AndroidManifest.xml', 'classes.dex'], { cwd: stage });

  put(root, '/data/system/packages.list', [
    `com.example.shop ${APPS.shop} 0 /data/user/0/com.example.shop default:targetSdkVersion=34 3003`,
    `com.example.bank ${APPS.bank} 0 /data/user/0/com.example.bank default:targetSdkVersion=30 3003,3002`,
    `com.example.legacy ${APPS.legacy} 0 /data/user/0/com.example.legacy default:targetSdkVersion=19 none`,
    '',
  ].join('\n'));

  const base = apkLibraryBase(root);
  const text = await textOffset(SOURCES.boringSsl);
  const conscryptText = text;
  process(root, 1, 0, '/system/bin/init', '/system/bin/init', [mapsLine(root, 0x5500000000, 0x10000, 'r-xp', 0, '/system/bin/init')]);
  const appProcess = mapsLine(root, 0x5600000000, 0x4000, 'r-xp', 0, '/system/bin/app_process64');
  const conscrypt = [
    mapsLine(root, 0x7100000000, 0x1000, 'r--p', 0, PATHS.conscrypt),
    mapsLine(root, 0x7100001000, 0x30000, 'r-xp', conscryptText, PATHS.conscrypt),
  ];
  process(root, 2001, APPS.shop, 'com.example.shop', '/system/bin/app_process64', [
    appProcess,
    ...conscrypt,
    mapsLine(root, 0x7200000000, 0x40000, 'r-xp', await textOffset(SOURCES.openSsl), PATHS.shopLib),
    mapsLine(root, 0x7300000000, 0x1000, 'rw-p', 0, '[anon:libc_malloc]'),
  ]);
  process(root, 2002, APPS.bank, 'com.example.bank', '/system/bin/app_process64', [
    appProcess,
    mapsLine(root, 0x7400000000, 0x1000, 'r--p', base, PATHS.bankApk),
    mapsLine(root, 0x7400010000, 0x30000, 'r-xp', base + text, PATHS.bankApk),
  ]);
  // The shop app again, in Android user 10 (a work profile): uid 10 * 100000 + app id.
  process(root, 2003, 10 * 100000 + APPS.shop, 'com.example.shop', '/system/bin/app_process64', [appProcess, ...conscrypt]);
  process(root, 2004, APPS.legacy, 'com.example.legacy', '/system/bin/app_process32', [
    mapsLine(root, 0xe0000000, 0x1000, 'r-xp', 0, '/system/lib/libssl.so'),
  ]);
}
