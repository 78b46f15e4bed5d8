// Tests for src/elf: real system files checked against binutils, crafted files in every class and
// byte order, error cases, and a seeded fuzz run over truncated and corrupted copies of libssl.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ElfError, ElfFile, withElfFile } from '../src/elf/index.js';
import type { ElfSymbolInfo } from '../src/elf/index.js';
import { buildElf } from './elf/builder.js';
import type { SampleOptions, SampleSymbol } from './elf/builder.js';
import type { FuzzReport, FuzzRequest } from './elf/fuzz-worker.js';
import * as tools from './elf/tools.js';

const LIBDIR = '/usr/lib/x86_64-linux-gnu';
const LIBSSL = `${LIBDIR}/libssl.so.3`;
const LIBC = `${LIBDIR}/libc.so.6`;
const GNUTLS = `${LIBDIR}/libgnutls.so.30`;
const NODE = '/usr/bin/node';
const TLS_NAMES = ['SSL_read', 'SSL_write', 'SSL_read_ex', 'SSL_write_ex'];
const FIXTURES = fileURLToPath(new URL('../../fixtures/elf/', import.meta.url));

let scratch = '';
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tlstap-elf-test-'));
});
after(() => {
  if (scratch !== '') rmSync(scratch, { recursive: true, force: true });
});

/** `name@@VER` / `name@VER` / `name`, the way nm and readelf print a symbol. */
function display(s: ElfSymbolInfo): string {
  // nm and readelf leave out the version of a version's own definition symbol (SAMPLE_1.0@@SAMPLE_1.0).
  if (s.version === undefined || s.version === s.name) return s.name;
  return `${s.name}${s.isDefaultVersion ? '@@' : '@'}${s.version}`;
}

function nmDisplay(s: tools.NmSymbol): string {
  return s.version === undefined ? s.name : `${s.name}${s.isDefault ? '@@' : '@'}${s.version}`;
}

/** Our .dynsym as sorted `address name@@VER` lines for defined symbols and `U name@VER` for undefined ones. */
async function ourDynamicListing(path: string): Promise<string[]> {
  const symbols = await withElfFile(path, (elf) => elf.symbols('dynsym'));
  return symbols
    .filter((s) => s.name !== '')
    .map((s) => (s.defined ? `${s.address.toString(16)} ${display(s)}` : `U ${display(s)}`))
    .sort();
}

/** The same listing from `nm -D`. */
function nmDynamicListing(path: string): string[] {
  return tools
    .parseNm(tools.run('nm', ['-D', path]))
    .map((s) => (s.address === undefined ? `U ${nmDisplay(s)}` : `${s.address.toString(16)} ${nmDisplay(s)}`))
    .sort();
}

describe('ELF reader on system libraries, checked against binutils', () => {
  it('libssl: headers, segments and sections agree with readelf', async () => {
    await withElfFile(LIBSSL, async (elf) => {
      assert.equal(elf.bits, 64);
      assert.equal(elf.littleEndian, true);
      assert.equal(elf.machine, 62);
      assert.equal(elf.machineName, 'x86_64');
      assert.equal(elf.type, 'dyn');
      const phdrs = tools.programHeaders(LIBSSL);
      assert.equal(elf.segments.length, phdrs.length);
      const loads = elf.segments.filter((s) => s.type === 1);
      assert.deepEqual(
        loads.map((s) => [s.offset, s.vaddr, s.filesz, s.memsz]),
        tools.loadSegments(LIBSSL).map((s) => [s.offset, s.vaddr, s.filesz, s.memsz]),
      );
      const expected = tools.sections(LIBSSL);
      assert.equal(elf.sections.length, expected.length + 1);
      for (const s of expected) {
        const ours = elf.sections[s.index]!;
        assert.deepEqual([ours.name, ours.addr, ours.offset, ours.size], [s.name, s.address, s.offset, s.size]);
      }
    });
  });

  it('libssl: SSL_read/SSL_write/_ex resolve to nm -D addresses, OPENSSL_3.0.0, and PT_LOAD file offsets', async () => {
    const nm = tools.parseNm(tools.run('nm', ['-D', '--defined-only', LIBSSL]));
    const loads = tools.loadSegments(LIBSSL);
    const found = await withElfFile(LIBSSL, (elf) => elf.findFunctions(TLS_NAMES));
    assert.deepEqual([...found.keys()], TLS_NAMES);
    for (const name of TLS_NAMES) {
      const fn = found.get(name)!;
      const ref = nm.find((s) => s.name === name && s.isDefault)!;
      assert.ok(ref, `nm -D lists ${name}`);
      assert.equal(fn.name, name);
      assert.equal(fn.address, ref.address);
      assert.equal(fn.version, 'OPENSSL_3.0.0');
      assert.equal(fn.isDefaultVersion, true);
      assert.equal(fn.kind, 'func');
      assert.equal(fn.binding, 'global');
      assert.equal(fn.defined, true);
      assert.equal(fn.table, 'dynsym');
      assert.ok(fn.size > 0n);
      assert.equal(fn.fileOffset, tools.offsetFromReadelf(loads, fn.address));
    }
  });

  it('libssl: every .dynsym entry matches nm -D (name, version, @ or @@, address)', async () => {
    const ours = await ourDynamicListing(LIBSSL);
    assert.ok(ours.length > 900);
    assert.deepEqual(ours, nmDynamicListing(LIBSSL));
  });

  it('libssl: build ID and DT_NEEDED match readelf; the stripped .symtab reads as empty', async () => {
    await withElfFile(LIBSSL, async (elf) => {
      const id = await elf.buildId();
      assert.match(id ?? '', /^[0-9a-f]{40}$/);
      assert.equal(id, tools.buildId(LIBSSL));
      assert.deepEqual(await elf.neededLibraries(), tools.needed(LIBSSL));
      assert.ok(!tools.sections(LIBSSL).some((s) => s.name === '.symtab'));
      assert.deepEqual(await elf.symbols('symtab'), []);
    });
  });

  it('libc: hidden versions (name@VER) read as non-default, and findFunctions picks the @@ version', async () => {
    const ours = await ourDynamicListing(LIBC);
    assert.deepEqual(ours, nmDynamicListing(LIBC));
    assert.ok(ours.some((line) => /^[0-9a-f]+ [^@]+@[^@]/.test(line)), 'libc has hidden versions');

    // Functions that nm lists both as name@@NEW and as name@OLD, at different addresses.
    const nm = tools.parseNm(tools.run('nm', ['-D', '--defined-only', LIBC])).filter((s) => s.type === 'T');
    const byName = new Map<string, tools.NmSymbol[]>();
    for (const s of nm) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    const multi = [...byName].filter(
      ([, list]) => list.some((s) => s.isDefault) && list.some((s) => !s.isDefault && s.address !== list.find((d) => d.isDefault)!.address),
    );
    assert.ok(multi.length >= 3, 'libc has functions with several versions');
    const names = multi.slice(0, 20).map(([name]) => name);
    const found = await withElfFile(LIBC, (elf) => elf.findFunctions(names));
    for (const name of names) {
      const fn = found.get(name);
      const def = byName.get(name)!.find((s) => s.isDefault)!;
      assert.ok(fn, `found ${name}`);
      assert.equal(fn.address, def.address, name);
      assert.equal(fn.version, def.version, name);
      assert.equal(fn.isDefaultVersion, true, name);
    }
  });

  it('libgnutls: gnutls_record_send resolves to the nm -D address and version', async () => {
    const ref = tools.parseNm(tools.run('nm', ['-D', '--defined-only', GNUTLS])).find((s) => s.name === 'gnutls_record_send' && s.isDefault);
    assert.ok(ref);
    const found = await withElfFile(GNUTLS, (elf) => elf.findFunctions(['gnutls_record_send', 'SSL_write']));
    assert.deepEqual([...found.keys()], ['gnutls_record_send']);
    const fn = found.get('gnutls_record_send')!;
    assert.equal(fn.address, ref.address);
    assert.equal(fn.version, ref.version);
    assert.equal(fn.fileOffset, tools.offsetFromReadelf(tools.loadSegments(GNUTLS), fn.address));
  });

  it('node: finds SSL_write and friends through .gnu.hash reading under 256 KiB of ~99 MB', async (t) => {
    const nm = tools.parseNm(tools.run('nm', ['-D', '--defined-only', NODE]));
    const loads = tools.loadSegments(NODE);
    const started = performance.now();
    const elf = await ElfFile.open(NODE);
    try {
      const found = await elf.findFunctions(TLS_NAMES);
      const elapsed = performance.now() - started;
      t.diagnostic(`open + findFunctions(${TLS_NAMES.length} names) on node: ${elapsed.toFixed(1)} ms, ${elf.bytesRead} bytes read of ${elf.fileSize}`);
      assert.ok(elf.fileSize > 10_000_000);
      assert.ok(elf.bytesRead < 256 * 1024, `read ${elf.bytesRead} bytes`);
      assert.deepEqual([...found.keys()].sort(), [...TLS_NAMES].sort());
      for (const name of TLS_NAMES) {
        const fn = found.get(name)!;
        assert.equal(fn.address, nm.find((s) => s.name === name)!.address);
        assert.equal(fn.table, 'dynsym');
        assert.equal(fn.fileOffset, tools.offsetFromReadelf(loads, fn.address));
      }
      assert.equal(await elf.buildId(), tools.buildId(NODE));
      assert.deepEqual(await elf.neededLibraries(), tools.needed(NODE));
    } finally {
      await elf.close();
    }
  });

  it('node: a local function that is only in .symtab is found there', async () => {
    const dynamicNames = new Set(tools.readelfSymbols(NODE, '.dynsym').map((s) => s.name));
    const symtab = tools.readelfSymbols(NODE, '.symtab');
    const count = new Map<string, number>();
    for (const s of symtab) count.set(s.name, (count.get(s.name) ?? 0) + 1);
    const local = symtab.find(
      (s) => s.type === 'FUNC' && s.bind === 'LOCAL' && s.ndx !== 'UND' && count.get(s.name) === 1 && !dynamicNames.has(s.name),
    );
    assert.ok(local, 'node has a unique local function');
    const found = await withElfFile(NODE, (elf) => elf.findFunctions([local.name]));
    const fn = found.get(local.name);
    assert.ok(fn);
    assert.deepEqual([fn.table, fn.binding, fn.kind, fn.address], ['symtab', 'local', 'func', local.value]);
  });

  it('findInSection gives the same first match in libssl .rodata as a plain search of the section bytes', async () => {
    const rodata = tools.sections(LIBSSL).find((s) => s.name === '.rodata')!;
    const bytes = readFileSync(LIBSSL).subarray(Number(rodata.offset), Number(rodata.offset + rodata.size));
    const pattern = /\.\.\/ssl\/[a-z0-9_]+\.c/;
    const expected = pattern.exec(bytes.toString('latin1'))?.[0];
    assert.ok(expected);
    await withElfFile(LIBSSL, async (elf) => {
      assert.equal(await elf.findInSection('.rodata', pattern), expected);
      assert.equal(await elf.findInSection('.rodata', /no such text in here/), undefined);
      assert.equal(await elf.findInSection('.no-such-section', pattern), undefined);
    });
  });
});

describe('ELF reader on the clang-built fixtures (fixtures/elf)', () => {
  for (const file of ['libsample-x86_64.so', 'libsample-i386.so', 'libsample-i386-sysv.so']) {
    const path = join(FIXTURES, file);
    it(`${file}: symbols, versions, hidden versions and .symtab fallback match binutils`, async () => {
      assert.deepEqual(await ourDynamicListing(path), nmDynamicListing(path));
      const symtab = tools.parseNm(tools.run('nm', [path]));
      await withElfFile(path, async (elf) => {
        assert.equal(elf.bits, file.includes('i386') ? 32 : 64);
        assert.equal(elf.machineName, file.includes('i386') ? 'i386' : 'x86_64');
        assert.equal(await elf.buildId(), tools.buildId(path));
        assert.deepEqual(await elf.neededLibraries(), ['libelfstub.so.1']);
        const ourSymtab = (await elf.symbols('symtab')).filter((s) => s.name !== '' && s.kind !== 'other');
        for (const s of ourSymtab) {
          const ref = symtab.find(
            (r) => r.name === s.name && r.version === s.version && (s.version === undefined || r.isDefault === s.isDefaultVersion),
          );
          assert.ok(ref, `nm lists ${display(s)}`);
          if (s.defined) assert.equal(s.address, ref.address);
        }

        const found = await elf.findFunctions(['sample_recv', 'sample_send', 'sample_local_helper', 'sample_counter', 'stub_peer', 'absent']);
        assert.deepEqual([...found.keys()], ['sample_recv', 'sample_send', 'sample_local_helper']);
        const recv = found.get('sample_recv')!;
        const refRecv = symtab.find((s) => s.name === 'sample_recv' && s.isDefault)!;
        assert.deepEqual([recv.version, recv.isDefaultVersion, recv.address, recv.table], ['SAMPLE_2.0', true, refRecv.address, 'dynsym']);
        const helper = found.get('sample_local_helper')!;
        assert.deepEqual([helper.table, helper.binding, helper.version], ['symtab', 'local', undefined]);
        assert.equal(helper.address, symtab.find((s) => s.name === 'sample_local_helper')!.address);
        const loads = tools.loadSegments(path);
        for (const fn of found.values()) assert.equal(fn.fileOffset, tools.offsetFromReadelf(loads, fn.address));

        const hidden = (await elf.symbols('dynsym')).find((s) => s.name === 'sample_recv' && !s.isDefaultVersion);
        assert.deepEqual([hidden?.version, hidden?.kind], ['SAMPLE_1.0', 'func']);
      });
    });
  }
});

/** Symbols for crafted files: versioned, hidden, weak, local, data, undefined. */
function sampleSymbols(thumb: boolean): SampleSymbol[] {
  const t = thumb ? 1 : 0; // ARM Thumb functions have bit 0 set in st_value
  return [
    { name: 'tls_send', kind: 'func', binding: 'global', offset: 0x10 + t, size: 16, dynamic: true, version: 'V_2' },
    { name: 'tls_recv', kind: 'func', binding: 'global', offset: 0x20 + t, size: 16, dynamic: true, version: 'V_2' },
    { name: 'tls_recv', kind: 'func', binding: 'global', offset: 0x30 + t, size: 8, dynamic: true, version: 'V_1', hidden: true },
    { name: 'tls_weak', kind: 'func', binding: 'weak', offset: 0x40 + t, size: 8, dynamic: true },
    { name: 'tls_state', kind: 'object', binding: 'global', offset: 8, size: 4, dynamic: true, version: 'V_1' },
    { name: 'tls_helper', kind: 'func', binding: 'local', offset: 0x50 + t, size: 4, dynamic: false },
    { name: 'peer_fn', kind: 'func', binding: 'global', offset: 0, size: 0, dynamic: true, undefined: true },
    ...Array.from({ length: 12 }, (_, i): SampleSymbol => ({ name: `filler_${i}`, kind: 'func', binding: 'global', offset: 0x60 + 4 * i + t, size: 4, dynamic: true })),
  ];
}

function sampleOptions(over: Partial<SampleOptions> & Pick<SampleOptions, 'bits' | 'littleEndian' | 'machine'>): SampleOptions {
  return {
    symbols: sampleSymbols(over.machine === 40),
    versions: ['V_1', 'V_2'],
    needed: ['libfirst.so.1', 'libsecond.so.2'],
    buildId: Buffer.from('00112233445566778899aabbccddeeff01234567', 'hex'),
    hash: 'gnu',
    textSize: 0x200,
    ...over,
  };
}

const VARIANTS: { label: string; machineName: string; options: SampleOptions }[] = [
  { label: 'ELF32 big-endian (ppc), .gnu.hash', machineName: 'ppc', options: sampleOptions({ bits: 32, littleEndian: false, machine: 20 }) },
  { label: 'ELF64 little-endian (aarch64), .gnu.hash', machineName: 'aarch64', options: sampleOptions({ bits: 64, littleEndian: true, machine: 183 }) },
  { label: 'ELF64 big-endian (s390x), SysV .hash', machineName: 's390x', options: sampleOptions({ bits: 64, littleEndian: false, machine: 22, hash: 'sysv' }) },
  { label: 'ELF32 little-endian (arm, Thumb), no hash table', machineName: 'arm', options: sampleOptions({ bits: 32, littleEndian: true, machine: 40, hash: 'none' }) },
  {
    label: 'ELF64 big-endian (ppc64), extended section numbering',
    machineName: 'ppc64',
    options: sampleOptions({ bits: 64, littleEndian: false, machine: 21, extendedNumbering: true }),
  },
];

describe('crafted ELF files in every class and byte order', () => {
  for (const variant of VARIANTS) {
    it(`${variant.label}: parses like readelf and resolves through the right PT_LOAD`, async () => {
      const sample = buildElf(variant.options);
      const path = join(scratch, `${variant.machineName}.so`);
      writeFileSync(path, sample.bytes);

      // First make sure the builder wrote a file binutils accepts without complaint.
      const check = tools.readelfWithWarnings(['-hlSdnVW', '--dyn-syms', '-s', path]);
      assert.equal(check.stderr, '', 'readelf has no warnings');
      const refSections = tools.sections(path);

      await withElfFile(path, async (elf) => {
        assert.equal(elf.bits, variant.options.bits);
        assert.equal(elf.littleEndian, variant.options.littleEndian);
        assert.equal(elf.machine, variant.options.machine);
        assert.equal(elf.machineName, variant.machineName);
        assert.equal(elf.type, 'dyn');
        assert.equal(elf.entry, sample.textAddr);
        assert.deepEqual(
          elf.sections.slice(1).map((s) => [s.name, s.offset, s.size]),
          refSections.map((s) => [s.name, s.offset, s.size]),
        );
        assert.deepEqual(
          elf.segments.map((s) => s.type),
          [1, 1, 2, 4],
        );
        assert.equal(await elf.buildId(), variant.options.buildId.toString('hex'));
        assert.deepEqual(await elf.neededLibraries(), variant.options.needed);

        const dynsym = await elf.symbols('dynsym');
        assert.deepEqual(
          dynsym.map((s) => display(s)),
          sample.dynsymOrder.map((s) =>
            s.version === undefined ? s.name : `${s.name}${s.undefined === true || s.hidden === true ? '@' : '@@'}${s.version}`,
          ),
        );
        const readelfNames = [...check.stdout.split("Symbol table '.dynsym'")[1]!.split('Symbol table')[0]!.matchAll(/^\s+\d+: .* (\S+?)(?: \(\d+\))?$/gm)].map(
          (m) => m[1],
        );
        assert.deepEqual(readelfNames, dynsym.map((s) => display(s)));
        const symtab = await elf.symbols('symtab');
        assert.deepEqual(symtab.map((s) => s.name).sort(), variant.options.symbols.map((s) => s.name).sort());

        const wanted = ['tls_send', 'tls_recv', 'tls_weak', 'tls_helper', 'tls_state', 'peer_fn', 'filler_11', 'missing'];
        const found = await elf.findFunctions(wanted);
        assert.deepEqual([...found.keys()], ['tls_send', 'tls_recv', 'tls_weak', 'tls_helper', 'filler_11']);
        const thumb = variant.options.machine === 40 ? 1n : 0n;
        const expect = (name: string, offset: number, table: string, version?: string): void => {
          const fn = found.get(name)!;
          assert.equal(fn.address, sample.textAddr + BigInt(offset) + thumb, name);
          // .text is in the second PT_LOAD, whose vaddr - offset differs from the first one's.
          assert.equal(fn.fileOffset, BigInt(sample.textOffset + offset), name);
          assert.equal(fn.fileOffset, elf.fileOffsetOf(sample.textAddr + BigInt(offset)), name);
          assert.equal(fn.table, table, name);
          assert.equal(fn.version, version, name);
          assert.equal(fn.isDefaultVersion, true, name);
        };
        expect('tls_send', 0x10, 'dynsym', 'V_2');
        expect('tls_recv', 0x20, 'dynsym', 'V_2');
        expect('tls_weak', 0x40, 'dynsym');
        expect('tls_helper', 0x50, 'symtab');
        expect('filler_11', 0x60 + 44, 'dynsym');
        assert.equal(found.get('tls_weak')!.binding, 'weak');
        assert.equal(elf.fileOffsetOf(sample.firstBase + 100n), 100n);
      });
    });
  }

  it('findInSection sees matches across chunk boundaries and stops at maxBytes', async () => {
    const MiB = 1024 * 1024;
    const rodata = Buffer.alloc(3 * MiB, 0x2e);
    rodata.write('MARKER-ONE-1234567', MiB - 6, 'latin1'); // straddles the first chunk boundary
    rodata.write('MARKER-TWO-7654321', 2 * MiB + 100, 'latin1'); // starts in the second chunk's overlap
    const sample = buildElf(sampleOptions({ bits: 64, littleEndian: true, machine: 62, rodata }));
    const path = join(scratch, 'rodata.so');
    writeFileSync(path, sample.bytes);
    await withElfFile(path, async (elf) => {
      assert.equal(await elf.findInSection('.rodata', /MARKER-ONE-\d+/), 'MARKER-ONE-1234567');
      assert.equal(await elf.findInSection('.rodata', /MARKER-TWO-\d+/g), 'MARKER-TWO-7654321');
      assert.equal(await elf.findInSection('.rodata', /MARKER-TWO-\d+/, 2 * MiB), undefined);
      assert.equal(await elf.findInSection('.rodata', /MARKER-\w+-\d+/, MiB + 100), 'MARKER-ONE-1234567');
    });
  });

  it('a SysV hash chain that loops is an ElfError, not a hang', async () => {
    const options = sampleOptions({ bits: 32, littleEndian: false, machine: 20, hash: 'sysv' });
    const sample = buildElf(options);
    const hash = sample.offsets.get('.hash')!;
    const nbucket = sample.bytes.readUInt32BE(hash);
    // Point every bucket at symbol 1 and symbol 1's chain at itself.
    for (let b = 0; b < nbucket; b++) sample.bytes.writeUInt32BE(1, hash + 8 + 4 * b);
    sample.bytes.writeUInt32BE(1, hash + 8 + 4 * nbucket + 4);
    const path = join(scratch, 'loop.so');
    writeFileSync(path, sample.bytes);
    await withElfFile(path, async (elf) => {
      await assert.rejects(elf.findFunctions(['tls_send']), (err: unknown) => err instanceof ElfError && /loops/.test(err.reason));
    });
  });

  it('a .gnu.hash chain without an end marker is an ElfError', async () => {
    const sample = buildElf(sampleOptions({ bits: 64, littleEndian: true, machine: 183 }));
    const at = sample.offsets.get('.gnu.hash')!;
    const nbuckets = sample.bytes.readUInt32LE(at);
    const bloom = sample.bytes.readUInt32LE(at + 8);
    const chain = at + 16 + bloom * 8 + nbuckets * 4;
    const hashedCount = sample.dynsymOrder.filter((s) => s.undefined !== true).length;
    // Clear every end-of-chain bit, so a lookup that misses runs off the end of .dynsym.
    for (let i = 0; i < hashedCount; i++) {
      sample.bytes.writeUInt32LE((sample.bytes.readUInt32LE(chain + 4 * i) & ~1) >>> 0, chain + 4 * i);
    }
    const path = join(scratch, 'endless.so');
    writeFileSync(path, sample.bytes);
    await withElfFile(path, async (elf) => {
      const names = Array.from({ length: 200 }, (_, i) => `probe_${i}`);
      await assert.rejects(elf.findFunctions(names), (err: unknown) => err instanceof ElfError && /chain/.test(err.reason));
    });
  });
});

describe('ElfError for files that are not usable', () => {
  it('a missing file gives ElfError with the path, ENOENT and a hint', async () => {
    const path = join(scratch ?? tmpdir(), 'does-not-exist.so');
    await assert.rejects(ElfFile.open(path), (err: unknown) => {
      assert.ok(err instanceof ElfError);
      assert.equal(err.path, path);
      assert.equal(err.code, 'ENOENT');
      assert.ok(err.message.startsWith(`${path}: cannot open`));
      assert.ok(err.hint);
      return true;
    });
  });

  it('text files, empty files, directories and truncated headers are rejected with a reason', async () => {
    const cases: [string, Buffer | 'dir', RegExp][] = [
      ['script.sh', Buffer.from('#!/bin/sh\necho hi\n'), /not an ELF file/],
      ['empty', Buffer.alloc(0), /too small/],
      ['dir', 'dir', /not a regular file|EISDIR/],
      ['class3', Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 3, 1, 1]), Buffer.alloc(60)]), /unknown ELF class 3/],
      ['short-header', readFileSync(LIBSSL).subarray(0, 40), /ELF header is truncated/],
    ];
    for (const [name, content, reason] of cases) {
      const path = join(scratch, name);
      if (content === 'dir') mkdirSync(path);
      else writeFileSync(path, content);
      await assert.rejects(ElfFile.open(path), (err: unknown) => {
        assert.ok(err instanceof ElfError, name);
        assert.equal(err.path, path);
        assert.match(err.reason, reason);
        assert.equal(err.message.split(': ')[0], path);
        return true;
      });
    }
  });

  it('fileOffsetOf an address outside every PT_LOAD throws ElfError', async () => {
    await withElfFile(LIBSSL, async (elf) => {
      const end = elf.segments.filter((s) => s.type === 1).reduce((m, s) => (s.vaddr + s.memsz > m ? s.vaddr + s.memsz : m), 0n);
      assert.throws(() => elf.fileOffsetOf(end + 0x100000n), (err: unknown) => err instanceof ElfError && /no PT_LOAD/.test(err.reason));
    });
  });

  it('withElfFile closes the file even when fn throws; a closed file gives ElfError', async () => {
    let kept: ElfFile | undefined;
    await assert.rejects(
      withElfFile(LIBSSL, async (elf) => {
        kept = elf;
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.ok(kept);
    await assert.rejects(kept.findFunctions(['SSL_read']), (err: unknown) => err instanceof ElfError && /closed/.test(err.reason));
  });
});

/** Runs the fuzz worker on a copy of `source`; rejects if a case makes no progress for 20 s. */
async function fuzz(source: string, label: string, seed: number, mutations: number, truncations: number): Promise<FuzzReport> {
  const workDir = join(scratch, `fuzz-${label}`);
  mkdirSync(workDir);
  copyFileSync(source, join(workDir, 'pristine'));
  const progress = new SharedArrayBuffer(8);
  const request: FuzzRequest = { source: join(workDir, 'pristine'), workDir, seed, truncations, mutations, progress };
  const worker = new Worker(new URL('./elf/fuzz-worker.js', import.meta.url), {
    workerData: request,
    resourceLimits: { maxOldGenerationSizeMb: 512 },
  });
  try {
    return await new Promise<FuzzReport>((resolve, reject) => {
      const view = new Int32Array(progress);
      let last = -1;
      let lastChange = Date.now();
      // A case that stops making progress is a hang, even in a synchronous loop: stop the worker
      // and name the case (the run is deterministic, so the case can be replayed from the seed).
      const timer = setInterval(() => {
        const now = Atomics.load(view, 0);
        if (now !== last) {
          last = now;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > 20_000) {
          clearInterval(timer);
          reject(new Error(`${label}: fuzz case ${now} (phase ${Atomics.load(view, 1)}) made no progress for 20 s`));
        }
      }, 250);
      worker.once('message', (r: FuzzReport) => {
        clearInterval(timer);
        resolve(r);
      });
      worker.once('error', (err) => {
        clearInterval(timer);
        reject(err);
      });
      worker.once('exit', (code) => {
        clearInterval(timer);
        reject(new Error(`${label}: fuzz worker exited with code ${code} before reporting`));
      });
    });
  } finally {
    await worker.terminate();
  }
}

function checkReport(t: { diagnostic(message: string): void }, label: string, report: FuzzReport, minCases: number): void {
  t.diagnostic(
    `${label}: ${report.cases} cases, ${report.parsed} parsed, ${report.rejected} ElfError; slowest case ${report.slowestMs.toFixed(1)} ms`,
  );
  assert.deepEqual(report.failures.slice(0, 5), [], `${label}: only ElfError may be thrown`);
  assert.equal(report.cases, report.parsed + report.rejected);
  assert.ok(report.cases >= minCases, `${label}: ran ${report.cases} cases`);
  // Both outcomes must occur, or the corruption did not reach anything that is parsed.
  assert.ok(report.parsed > 100, `${label}: ${report.parsed} parsed`);
  assert.ok(report.rejected > 100, `${label}: ${report.rejected} rejected`);
}

describe('robustness: truncated and corrupted files parse or throw ElfError, never anything else, never hang', { concurrency: 2 }, () => {
  it('libssl.so.3 (ELF64 little-endian, .gnu.hash, versions)', { timeout: 120_000 }, async (t) => {
    checkReport(t, 'libssl', await fuzz(LIBSSL, 'libssl', 0x5eed1e5, 1200, 200), 1800);
  });

  it('a crafted ELF32 big-endian file (.gnu.hash, versions, .symtab)', { timeout: 120_000 }, async (t) => {
    const sample = buildElf(VARIANTS[0]!.options);
    const path = join(scratch, 'fuzz-be32.so');
    writeFileSync(path, sample.bytes);
    checkReport(t, 'ELF32 BE', await fuzz(path, 'be32', 0xbe32, 800, 100), 1400);
  });
});
