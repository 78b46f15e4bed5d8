// What the npm package ships per architecture (scripts/build-bpf.sh, scripts/build-native.sh): BPF
// objects built for each architecture's registers, and addons that carry libbpf, libelf and zlib
// inside, load on glibc 2.35 (Ubuntu 22.04) and later, and are found by one loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfError, SHIPPED_ARCHS, addonCandidates, bpfObjectFile, bpfObjectPath, loadAddon, loadFirstAddon } from '../src/native/binding.js';
import { packageRoot } from '../src/util/package-root.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';

const ROOT = packageRoot();

/** readelf's name for each architecture's machine, and its GNU triplet (Debian's multiarch directory). */
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' } as const;
const TRIPLET = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' } as const;
/** What a prebuilt addon may need from the system: glibc and the C++ runtime Node itself needs. */
const ALLOWED_NEEDED = /^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;
/** The oldest glibc the addons must load on: Ubuntu 22.04's. */
const GLIBC_FLOOR = [2, 35];

function readelf(...args: string[]): string {
  return execFileSync('readelf', ['-W', ...args], { encoding: 'utf8' });
}

for (const arch of SHIPPED_ARCHS) {
  const addon = addonCandidates(ROOT, arch)[0]!;

  test(`the linux-${arch} addon is an ${arch} shared object that needs only glibc and the C++ runtime`, () => {
    assert.match(readelf('-h', addon), new RegExp(`Machine:\\s+${MACHINE[arch]}`));
    const needed = [...readelf('-d', addon).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]!);
    assert.ok(needed.includes('libc.so.6'), needed.join(' '));
    assert.deepEqual(needed.filter((n) => !ALLOWED_NEEDED.test(n)), [], 'libbpf, libelf and zlib are linked in');
    // libbpf's own code is inside: its log prefix, and no undefined libbpf or libelf symbol.
    assert.ok(readFileSync(addon).includes('libbpf: '));
    const undefinedSyms = [...readelf('--dyn-syms', addon).matchAll(/ UND (\S+)/g)].map((m) => m[1]!);
    assert.deepEqual(undefinedSyms.filter((s) => /^(bpf_|btf_|libbpf_|elf_|gelf_|inflate|deflate)/.test(s)), []);
  });

  test(`the linux-${arch} addon loads on glibc ${GLIBC_FLOOR.join('.')}, and every thread-local access is resolved at load`, () => {
    const versions = [...readelf('--dyn-syms', addon).matchAll(/@GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.ok(versions.length > 0);
    const newest = versions.reduce((a, b) => (b[0]! > a[0]! || (b[0] === a[0] && b[1]! > a[1]!) ? b : a));
    assert.ok(newest[0]! < GLIBC_FLOOR[0]! || (newest[0] === GLIBC_FLOOR[0] && newest[1]! <= GLIBC_FLOOR[1]!), `needs GLIBC_${newest.join('.')}`);
    // libelf's thread-local error number (native/src/static_link.c): a shared object must reach it
    // through a dynamic TLS relocation; local-exec code would write to another module's memory.
    if (/^\s+TLS\s/m.test(readelf('-l', addon))) {
      assert.match(readelf('-r', addon), /R_X86_64_DTPMOD64|R_X86_64_TPOFF64|R_AARCH64_TLSDESC|R_AARCH64_TLS_TPREL64|R_AARCH64_TLS_DTPMOD64/);
    }
  });

  test(`libelf's messages in native/src/static_link.c are those of ${arch}'s libelf.a, by error number`, (t) => {
    const archive = `/usr/lib/${TRIPLET[arch]}/libelf.a`;
    const dir = mkdtempSync(join(tmpdir(), 'tlstap-libelf-'));
    try {
      execFileSync('ar', ['x', archive, 'elf_error.o'], { cwd: dir });
      const object = join(dir, 'elf_error.o');
      // msgstr: the messages, NUL-separated, in error-number order, in a section of the object.
      const symbol = /:\s+([0-9a-f]+)\s+(\d+)\s+OBJECT\s+LOCAL\s+DEFAULT\s+(\d+)\s+msgstr$/m.exec(readelf('-s', object));
      assert.ok(symbol, `${archive}'s elf_error.o has a msgstr table`);
      const section = new RegExp(`\\[\\s*${symbol[3]}\\]\\s+\\S+\\s+\\S+\\s+[0-9a-f]+\\s+([0-9a-f]+)`).exec(readelf('-S', object));
      assert.ok(section);
      const start = parseInt(section[1]!, 16) + parseInt(symbol[1]!, 16);
      const table = readFileSync(object).subarray(start, start + Number(symbol[2])).toString('latin1');
      const expected = table.split('\0').slice(0, -1);
      const source = readFileSync(join(ROOT, 'native', 'src', 'static_link.c'), 'utf8');
      const block = /messages\[\] = \{\n([\s\S]*?)\n\};/.exec(source);
      assert.ok(block);
      const ours = [...block[1]!.matchAll(/^\t"(.*)",$/gm)].map((m) => m[1]!);
      assert.deepEqual(ours, expected);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || /No such file/.test(String(error))) {
        if (process.env.CI === 'true') throw error;
        t.skip(`${archive} is missing: scripts/setup.sh installs libelf-dev:${arch === 'x64' ? 'amd64' : arch}`);
        return;
      }
      throw error;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('each architecture has its own BPF object: x86_64 reads arguments from struct pt_regs, arm64 from user_pt_regs', () => {
  const dump = (arch: string): string =>
    execFileSync('bpftool', ['btf', 'dump', 'file', bpfObjectFile('tlstap.bpf.o', ROOT, arch)], { encoding: 'utf8' });
  for (const arch of SHIPPED_ARCHS) assert.match(readelf('-h', bpfObjectFile('tlstap.bpf.o', ROOT, arch)), /Machine:\s+Linux BPF/);
  // x86's PT_REGS_PARM1 is pt_regs.rdi (the user-space ABI's names); arm64's is user_pt_regs.regs[0].
  assert.match(dump('x64'), /STRUCT 'pt_regs' size=168 vlen=21\n(\t.*\n)*\t'rdi' /);
  assert.doesNotMatch(dump('arm64'), /STRUCT 'pt_regs'/);
});

test('the loader takes the first candidate that loads, and lists every path it passed over with the reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-loader-'));
  try {
    const missing = join(dir, 'prebuilds', 'linux-x64', 'tlstap.node');
    const broken = join(dir, 'broken.node');
    writeFileSync(broken, 'not an ELF file');
    const good = join(dir, 'good.node');
    copyFileSync(addonCandidates(ROOT)[0]!, good);

    const { addon, path } = loadFirstAddon([missing, broken, good]);
    assert.equal(path, good);
    assert.equal(typeof addon.numPossibleCpus(), 'number');

    assert.throws(
      () => loadFirstAddon([missing, broken]),
      (error: Error) => {
        assert.match(error.message, new RegExp(`${missing}: missing`));
        assert.match(error.message, new RegExp(`${broken}: .*(invalid ELF header|too short)`));
        assert.match(error.message, /npm run build:native/);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed open is an error, never a session: libbpf\'s words for its own codes, libelf\'s message in the log', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-open-'));
  try {
    // Cut inside the section headers: libelf itself fails, through native/src/static_link.c.
    const truncated = join(dir, 'truncated.bpf.o');
    writeFileSync(truncated, readFileSync(bpfObjectPath()).subarray(0, 100));
    const { BpfSession } = loadAddon();
    assert.throws(
      () => new BpfSession(truncated),
      (error: unknown) => {
        assert.ok(error instanceof BpfError);
        assert.equal(error.op, 'bpf_object__open_file');
        assert.equal(error.errno, 4001); // LIBBPF_ERRNO__FORMAT
        assert.match(error.message, /bpf_object__open_file failed: BPF object format invalid/);
        assert.match(error.libbpfLog, /invalid `Elf' handle/);
        return true;
      },
    );
    assert.throws(() => new BpfSession(join(dir, 'missing.bpf.o')), (error: unknown) => error instanceof BpfError && error.code === 'ENOENT');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('in arm64 Node 18 under qemu-user, the linux-arm64 addon loads, its layout is the mirror, and it opens the arm64 object', (t) => {
  // scripts/setup.sh unpacks Debian's arm64 node and its libraries here; qemu -L looks there first.
  const sysroot = join(ROOT, 'build', 'arm64-node');
  const node = join(sysroot, 'usr', 'bin', 'node');
  const qemu = '/usr/bin/qemu-aarch64-static';
  if (!existsSync(node) || !existsSync(qemu)) {
    if (process.env.CI === 'true') assert.fail(`${node} or ${qemu} is missing: run scripts/setup.sh`);
    t.skip(`${node} or ${qemu} is missing: run scripts/setup.sh`);
    return;
  }
  const script = `
    const { loadAddon, bpfObjectPath } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'native', 'binding.js'))});
    const addon = loadAddon();
    const session = new addon.BpfSession(bpfObjectPath());
    session.close();
    console.log(JSON.stringify({ arch: process.arch, version: process.version, object: bpfObjectPath(), layout: addon.layout() }));`;
  const out = execFileSync(qemu, ['-L', sysroot, node, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  const seen = JSON.parse(out) as { arch: string; version: string; object: string; layout: unknown };
  assert.equal(seen.arch, 'arm64');
  assert.match(seen.version, /^v18\./);
  assert.equal(seen.object, bpfObjectFile('tlstap.bpf.o', ROOT, 'arm64'));
  assert.deepEqual(seen.layout, EVENT_LAYOUT);
});
