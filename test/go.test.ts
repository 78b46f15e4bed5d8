// The Go binary reader (src/elf/go) against real Go programs of every pclntab layout, checked against
// the Go toolchain (`go tool nm`, `go version -m`) and against objdump's instruction boundaries.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { withElfFile } from '../src/elf/index.js';
import type { ElfFile } from '../src/elf/index.js';
import {
  ARM64_RET,
  DecodeError,
  PCLNTAB_MAGIC_GO12,
  Pclntab,
  PclntabError,
  arm64ReturnOffsets,
  parseModinfo,
  parsePclntabHeader,
  readGoBinary,
  readGoBuildInfo,
  returnOffsets,
  x86ReturnOffsets,
  ARM64_LOAD_STACK_GUARD,
  arm64BodyStart,
  bodyStart,
  x86BodyStart,
} from '../src/elf/go/index.js';
import { GO_FIXTURES, goFixture, goTool, requireGoFixtures, withPatchedCopy } from './support/go-programs.js';

const WRITE = 'crypto/tls.(*Conn).Write';
const READ = 'crypto/tls.(*Conn).Read';

/** `go tool nm -size` of a file: the text symbols at each address. */
function goNm(path: string): Map<bigint, { name: string; size: number }[]> {
  const out = new Map<bigint, { name: string; size: number }[]>();
  for (const line of goTool(['tool', 'nm', '-size', path]).split('\n')) {
    const m = /^\s*([0-9a-f]+)\s+(\d+)\s+[Tt]\s+(.+)$/.exec(line);
    if (m === null) continue;
    const address = BigInt(`0x${m[1]}`);
    out.set(address, [...(out.get(address) ?? []), { name: m[3]!, size: Number(m[2]) }]);
  }
  return out;
}

/**
 * Whether a .symtab name is the pclntab's name of the same function: equal, or with the ABI suffix of
 * an assembly function (.abi0), or with an array length or type arguments that the table writes as
 * [...] (type..eq.[...]internal/cpu.option is type..eq.[5]internal/cpu.option in .symtab).
 * Names of function-local types have a middle dot in the table and a plain dot in .symtab.
 */
function sameFunction(symbol: string, tableName: string): boolean {
  const name = tableName.replace(/\u00b7/g, '.');
  if (symbol === name || symbol === `${name}.abi0`) return true;
  const escape = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${name.split('[...]').map(escape).join('\\[.+\\]')}$`).test(symbol);
}

/** Addresses of every return instruction objdump sees between two addresses (GNU objdump for x86, llvm-objdump for arm64). */
function objdumpReturns(path: string, arch: string, start: bigint, end: bigint): bigint[] {
  const tool = arch === 'x86_64' ? 'objdump' : 'llvm-objdump';
  const text = execFileSync(tool, ['-d', '--no-show-raw-insn', `--start-address=0x${start.toString(16)}`, `--stop-address=0x${end.toString(16)}`, path], {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
  });
  const out: bigint[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+(retq?|ret)\b/.exec(line);
    if (m !== null) out.push(BigInt(`0x${m[1]}`));
  }
  return out;
}

test('each Go fixture: its Go version and module from the build info, as `go version -m` reads them', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES) {
    const info = await withElfFile(f.path, (elf) => readGoBuildInfo(elf));
    assert.ok(info, f.path);
    assert.equal(info.goVersion, f.goVersion, f.path);
    if (!f.buildInfo) {
      // No .go.buildinfo (the Go toolchain says "not a Go executable"): the version comes from .rodata.
      assert.equal(info.versionSource, 'rodata', f.path);
      const version = spawnSync('go', ['version', f.path], { encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local' } });
      assert.match(version.stdout + version.stderr, /not a Go executable/);
      continue;
    }
    assert.equal(info.versionSource, 'buildinfo', f.path);
    const lines = goTool(['version', '-m', f.path]).split('\n');
    assert.equal(lines[0], `${f.path}: ${f.goVersion}`);
    const field = (kind: string) => lines.find((l) => l.startsWith(`\t${kind}\t`))?.split('\t').slice(2);
    assert.equal(info.path, field('path')?.[0], f.path);
    assert.deepEqual(info.module, { path: field('mod')?.[0], version: field('mod')?.[1] }, f.path);
    for (const l of lines.filter((x) => x.startsWith('\tbuild\t'))) {
      const setting = l.split('\t')[2]!;
      const eq = setting.indexOf('=');
      assert.equal(info.settings[setting.slice(0, eq)], setting.slice(eq + 1), `${f.path}: ${setting}`);
    }
  }
});

test('each Go fixture: its pclntab layout, and crypto/tls.(*Conn).Write and Read found in it', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES) {
    await withElfFile(f.path, async (elf) => {
      const go = await readGoBinary(elf, [WRITE, READ, 'no.such.function']);
      assert.ok(go, f.path);
      assert.equal(go.pclntabProblem, undefined, f.path);
      assert.equal(go.pclntab?.layout, f.layout, f.path);
      assert.equal(go.pclntab?.source, 'section', f.path);
      if (f.symbols) {
        const nm = goNm(f.path);
        for (const fn of go.functions.values()) assert.ok(nm.get(fn.address)?.some((s) => s.name === fn.name), `${f.path}: go tool nm puts no ${fn.name} at ${fn.address}`);
      }
      assert.equal(go.pclntab?.quantum, f.arch === 'x86_64' ? 1 : 4);
      assert.deepEqual([...go.functions.keys()].sort(), [READ, WRITE]);
      for (const fn of go.functions.values()) {
        assert.equal(fn.fileOffset, elf.fileOffsetOf(fn.address));
        assert.ok(fn.size > 200 && fn.size < 8192, `${f.path} ${fn.name} size ${fn.size}`);
        // Every Go function begins with its stack check: on amd64 a compare with g.stackguard0 through
        // R14 (regabi) or the TLS g, on arm64 a load of g.stackguard0 through R28.
        const code = await elf.readAt(fn.fileOffset, 16, 'code');
        if (f.arch === 'aarch64') assert.equal(code.readUInt32LE(0), 0xf9400b90, `${f.path} ${fn.name}: ${code.toString('hex')}`); // ldr x16, [x28, #16]
        else assert.match(code.toString('hex'), /^(493b6610|493b6618|4c8d6424|64488b0c25|488b0c25|4c8da424)/, `${f.path} ${fn.name}: ${code.toString('hex')}`);
      }
    });
  }
});

test('the unstripped Go 1.19 programs: every pclntab function is where `go tool nm` puts it; the stripped ones agree', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const name of ['client', 'server'] as const) {
    const nm = goNm(goFixture(name).path);
    const functions = await withElfFile(goFixture(name).path, async (elf) => (await Pclntab.find(elf))!.allFunctions());
    assert.ok(functions.length > 3000, `${functions.length} functions`);
    for (const fn of functions) {
      const sym = nm.get(fn.address)?.find((s) => sameFunction(s.name, fn.name));
      assert.ok(sym, `${name}: go tool nm has no ${fn.name} at 0x${fn.address.toString(16)}`);
      // The table's size runs to the next function: the symbol's size plus alignment padding.
      assert.ok(fn.size >= sym.size && fn.size < sym.size + 64, `${fn.name}: ${fn.size} vs ${sym.size}`);
    }
    const symbolAt = (fname: string) => [...nm].find(([, syms]) => syms.some((s) => s.name === fname))?.[0];
    const stripped = await withElfFile(goFixture(`${name}-stripped`).path, async (elf) => readGoBinary(elf, [WRITE, READ]));
    for (const fname of [WRITE, READ]) assert.equal(stripped?.functions.get(fname)?.address, symbolAt(fname), `${name}-stripped ${fname}`);
  }
});

/** Reads a copy of `source` changed by `patch`, made in a temporary directory that is removed after. */
function withPatchedElf<T>(source: string, patch: (buf: Buffer) => void, fn: (elf: ElfFile) => Promise<T>): Promise<T> {
  return withPatchedCopy(source, patch, (path) => withElfFile(path, fn));
}

test('without section headers, the pclntab is found by a scan and the build info in the data segment', async (t) => {
  if (!requireGoFixtures(t)) return;
  const expected = await withElfFile(goFixture('client').path, (elf) => readGoBinary(elf, [WRITE, READ]));
  const removeSections = (buf: Buffer) => {
    // ELF64: e_shoff at 0x28, e_shnum at 0x3c, e_shstrndx at 0x3e.
    buf.writeBigUInt64LE(0n, 0x28);
    buf.writeUInt16LE(0, 0x3c);
    buf.writeUInt16LE(0, 0x3e);
  };
  await withPatchedElf(goFixture('client-stripped').path, removeSections, async (elf) => {
    assert.equal(elf.sections.length, 0);
    const go = await readGoBinary(elf, [WRITE, READ]);
    assert.equal(go?.pclntab?.source, 'scan');
    assert.equal(go?.pclntab?.layout, 'go1.18');
    assert.equal(go?.buildInfo?.goVersion, 'go1.19.8');
    assert.equal(go?.buildInfo?.versionSource, 'buildinfo');
    assert.deepEqual(go?.functions, expected?.functions);
  });
});

test('without a .gopclntab section, the pclntab is found through the runtime.pclntab symbol', async (t) => {
  if (!requireGoFixtures(t)) return;
  const expected = await withElfFile(goFixture('client').path, (elf) => readGoBinary(elf, [WRITE, READ]));
  const rename = (buf: Buffer) => {
    // In the section-name string table: .gopclntab -> .gopclnXYZ.
    const at = buf.indexOf(Buffer.from('\0.gopclntab\0', 'latin1'));
    assert.ok(at > 0);
    buf.write('.gopclnXYZ', at + 1, 'latin1');
  };
  await withPatchedElf(goFixture('client').path, rename, async (elf) => {
    assert.equal(elf.section('.gopclntab'), undefined);
    const go = await readGoBinary(elf, [WRITE, READ]);
    assert.equal(go?.pclntab?.source, 'symbol');
    assert.deepEqual(go?.functions, expected?.functions);
  });
});

test('a Go 1.2-1.15 pclntab and an unknown one are named as layouts tlstap does not read', async (t) => {
  if (!requireGoFixtures(t)) return;
  const source = goFixture('client-stripped').path;
  const offset = await withElfFile(source, async (elf) => Number(elf.section('.gopclntab')!.offset));
  for (const [magic, words] of [
    [PCLNTAB_MAGIC_GO12, /Go 1\.2-1\.15 layout \(magic 0xfffffffb\).*rebuild it with Go 1\.16 or later/],
    [0xfffffff7, /layout tlstap does not know \(magic 0xfffffff7\).*go version FILE/],
  ] as const) {
    await withPatchedElf(source, (buf) => buf.writeUInt32LE(magic, offset), async (elf) => {
      const go = await readGoBinary(elf, [WRITE, READ]);
      assert.equal(go?.buildInfo?.goVersion, 'go1.19.8');
      assert.equal(go?.pclntab, undefined);
      assert.match(go?.pclntabProblem ?? '', words);
      assert.equal(go?.functions.size, 0);
    });
  }
});

test('a pclntab header that does not hold together is refused', () => {
  const header = Buffer.alloc(72);
  header.writeUInt32LE(0xfffffff1, 0);
  header[6] = 1;
  header[7] = 8;
  assert.throws(() => parsePclntabHeader('x', header), (err: unknown) => err instanceof PclntabError && /0 functions/.test(err.message));
  header[7] = 3;
  assert.throws(() => parsePclntabHeader('x', header), /pointer size 3/);
  header[7] = 8;
  header.writeBigUInt64LE(10n, 8); // nfunc
  header.writeBigUInt64LE(500n, 8 + 3 * 8); // funcname offset after...
  header.writeBigUInt64LE(100n, 8 + 4 * 8); // ...the cu offset
  assert.throws(() => parsePclntabHeader('x', header), /tables out of order/);
  header.writeBigUInt64LE(72n, 8 + 3 * 8);
  header.writeBigUInt64LE(1000n, 8 + 7 * 8);
  const h = parsePclntabHeader('x', header);
  assert.deepEqual([h.layout, h.nfunc, h.funcnameOffset, h.cuOffset, h.functabOffset], ['go1.20', 10, 72, 100, 1000]);
  // Big-endian tables are read too.
  const be = Buffer.from(header);
  be.writeUInt32BE(0xfffffff0, 0);
  for (const i of [0, 3, 4, 7]) be.writeBigUInt64BE(header.readBigUInt64LE(8 + i * 8), 8 + i * 8);
  const hb = parsePclntabHeader('x', be);
  assert.deepEqual([hb.layout, hb.littleEndian, hb.nfunc, hb.functabOffset], ['go1.18', false, 10, 1000]);
});

test('module info lines: path, mod and build settings', () => {
  const info = parseModinfo('path\texample.com/cmd/x\nmod\texample.com\tv1.2.3\th1:abc=\ndep\tgolang.org/x/net\tv0.1.0\th1:x=\nbuild\t-ldflags=-s -w\nbuild\tCGO_ENABLED=0\n');
  assert.deepEqual(info, {
    path: 'example.com/cmd/x',
    module: { path: 'example.com', version: 'v1.2.3' },
    settings: { '-ldflags': '-s -w', CGO_ENABLED: '0' },
  });
});

test('the return instructions of (*Conn).Read and Write in every fixture are the RETs objdump shows', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES) {
    await withElfFile(f.path, async (elf) => {
      const go = await readGoBinary(elf, [WRITE, READ]);
      for (const fn of go!.functions.values()) {
        const code = await elf.readAt(fn.fileOffset, fn.size, 'code');
        const ours = returnOffsets(f.arch, code, fn.address).map((o) => fn.address + BigInt(o));
        const theirs = objdumpReturns(f.path, f.arch, fn.address, fn.address + BigInt(fn.size));
        assert.ok(ours.length >= 2, `${f.path} ${fn.name}: ${ours.length} returns`);
        assert.deepEqual(ours, theirs, `${f.path} ${fn.name}`);
      }
    });
  }
});

/** Each instruction of [start, end) as objdump shows it: address, mnemonic, and a branch's target when it has one. */
function objdumpInstructions(path: string, arch: string, start: bigint, end: bigint): { at: bigint; op: string; target?: bigint }[] {
  const tool = arch === 'x86_64' ? 'objdump' : 'llvm-objdump';
  const text = execFileSync(tool, ['-d', '--no-show-raw-insn', `--start-address=0x${start.toString(16)}`, `--stop-address=0x${end.toString(16)}`, path], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const out: { at: bigint; op: string; target?: bigint }[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+([a-z][a-z0-9.]*)\s*(?:(?:0x)?([0-9a-f]+)\b)?/.exec(line);
    if (m === null) continue;
    const insn: { at: bigint; op: string; target?: bigint } = { at: BigInt(`0x${m[1]}`), op: m[2]! };
    if (m[3] !== undefined && /^(j|b)/.test(m[2]!)) insn.target = BigInt(`0x${m[3]}`);
    out.push(insn);
  }
  return out;
}

test('Write and Read of every fixture: the probe goes after the stack check, which objdump shows restarting the function at its entry', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES.filter((x) => x.goVersion !== 'go1.16.3')) {
    await withElfFile(f.path, async (elf) => {
      const go = await readGoBinary(elf, [WRITE, READ]);
      for (const fn of go!.functions.values()) {
        const code = await elf.readAt(fn.fileOffset, fn.size, 'code');
        const body = fn.address + BigInt(bodyStart(f.arch, code, fn.address));
        const insns = objdumpInstructions(f.path, f.arch, fn.address, fn.address + BigInt(fn.size));
        const check = insns.findIndex((i) => i.op === 'jbe' || i.op === 'b.ls');
        assert.ok(check >= 1 && check < 4, `${f.path} ${fn.name}: the stack check's branch is instruction ${check}`);
        assert.equal(body, insns[check + 1]!.at, `${f.path} ${fn.name}`);
        // The branch leads to morestack and back to the entry: a probe there would see the call twice.
        const restart = insns.filter((i) => (i.op === 'jmp' || i.op === 'b') && i.target === fn.address);
        assert.equal(restart.length, 1, `${f.path} ${fn.name}: jumps back to the entry`);
        assert.ok(restart[0]!.at > insns[check]!.target!, `${f.path} ${fn.name}: the restart follows the branch target`);
        // Nothing jumps to the body start: the probe there fires once per call.
        assert.ok(!insns.some((i) => i.target === body), `${f.path} ${fn.name}: a branch to the body start`);
      }
    });
  }
});

test('stack-check finders: prologue forms, and code without a check is refused', () => {
  // cmp rsp, [r14+16]; jbe +0x10; push rbp; ...
  const small = Uint8Array.from([0x49, 0x3b, 0x66, 0x10, 0x76, 0x10, 0x55, ...new Array(0x20).fill(0x90)]);
  assert.equal(x86BodyStart(small), 6);
  // lea r12, [rsp-0x68]; cmp r12, [r14+16]; jbe rel32 +0x20
  const big = Uint8Array.from([0x4c, 0x8d, 0x64, 0x24, 0x98, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x20, 0, 0, 0, ...new Array(0x30).fill(0x90)]);
  assert.equal(x86BodyStart(big), 15);
  // lea rax, [rsp-0x68] writes an argument register: not a Go stack check.
  assert.throws(() => x86BodyStart(Uint8Array.from([0x48, 0x8d, 0x44, 0x24, 0x98, 0x76, 0x10, ...new Array(0x20).fill(0x90)])), DecodeError);
  // A JBE that leaves the function, and code with no check at all (push rbp first).
  assert.throws(() => x86BodyStart(Uint8Array.from([0x49, 0x3b, 0x66, 0x10, 0x76, 0x7f, 0x90])), DecodeError);
  assert.throws(() => x86BodyStart(Uint8Array.from([0x55, 0x48, 0x89, 0xe5, 0xc3])), DecodeError);
  const arm = Buffer.alloc(32);
  arm.writeUInt32LE(ARM64_LOAD_STACK_GUARD, 0);
  arm.writeUInt32LE(0xd101c3f1, 4); // sub x17, sp, #112
  arm.writeUInt32LE(0xeb10023f, 8); // cmp x17, x16
  arm.writeUInt32LE(0x54000089, 12); // b.ls +4 words
  assert.equal(arm64BodyStart(arm), 16);
  arm.writeUInt32LE(0xd101c3e1, 4); // sub x1, sp, #112: an argument register
  assert.throws(() => arm64BodyStart(arm), DecodeError);
  arm.writeUInt32LE(0xd101c3f1, 4);
  arm.writeUInt32LE(0x54ffff89, 12); // b.ls backwards
  assert.throws(() => arm64BodyStart(arm), DecodeError);
  assert.throws(() => arm64BodyStart(Buffer.alloc(16)), DecodeError);
});

test('the x86 decoder agrees with objdump on every RET of the whole crypto/tls package', async (t) => {
  if (!requireGoFixtures(t)) return;
  const path = goFixture('server').path;
  await withElfFile(path, async (elf) => {
    const all = (await (await Pclntab.find(elf))!.allFunctions()).filter((fn) => fn.name.startsWith('crypto/tls.'));
    assert.ok(all.length > 300, `${all.length} functions`);
    const ours: bigint[] = [];
    for (const fn of all) {
      const code = await elf.readAt(elf.fileOffsetOf(fn.address), fn.size, 'code');
      ours.push(...x86ReturnOffsets(code, fn.address).map((o) => fn.address + BigInt(o)));
    }
    const start = all.reduce((a, fn) => (fn.address < a ? fn.address : a), all[0]!.address);
    const end = all.reduce((a, fn) => (fn.address + BigInt(fn.size) > a ? fn.address + BigInt(fn.size) : a), 0n);
    const inPackage = (a: bigint) => all.some((fn) => a >= fn.address && a < fn.address + BigInt(fn.size));
    const theirs = objdumpReturns(path, 'x86_64', start, end).filter(inPackage);
    assert.ok(ours.length > 500, `${ours.length} returns`);
    assert.deepEqual(ours.sort((a, b) => (a < b ? -1 : 1)), theirs);
  });
});

test('return finders: RET forms, padding, and code that does not decode', () => {
  // mov rbx, rax; ret; ret 8; int3 padding
  assert.deepEqual(x86ReturnOffsets(Uint8Array.from([0x48, 0x89, 0xc3, 0xc3, 0xc2, 0x08, 0x00, 0xcc, 0xcc])), [3, 4]);
  // A C3 byte inside an instruction (mov eax, 0xc3) is not a return.
  assert.deepEqual(x86ReturnOffsets(Uint8Array.from([0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc3])), [5]);
  // A far return (CB) is not one of Go's returns; an invalid opcode before the padding is an error.
  assert.deepEqual(x86ReturnOffsets(Uint8Array.from([0xcb, 0xc3])), [1]);
  assert.throws(() => x86ReturnOffsets(Uint8Array.from([0x06, 0xc3])), DecodeError);
  // An instruction cut off by the end of the function is an error too.
  assert.throws(() => x86ReturnOffsets(Uint8Array.from([0xc3, 0xb8, 0xc3])), DecodeError);
  const arm = Buffer.alloc(16);
  arm.writeUInt32LE(0xaa0003e1, 0); // mov x1, x0
  arm.writeUInt32LE(ARM64_RET, 4);
  arm.writeUInt32LE(0xd65f0200, 8); // ret x16
  arm.writeUInt32LE(0xd61f0200, 12); // br x16: not a return
  assert.deepEqual(arm64ReturnOffsets(arm), [4, 8]);
  assert.throws(() => arm64ReturnOffsets(arm.subarray(0, 6)), DecodeError);
});

test('every function of real Go programs decodes; the one signature blob in the text is refused, not guessed', async (t) => {
  if (!requireGoFixtures(t)) return;
  for (const f of GO_FIXTURES.filter((x) => x.path.endsWith('/server') || x.goVersion === 'go1.16.3' || x.arch === 'aarch64')) {
    await withElfFile(f.path, async (elf) => {
      const failed: string[] = [];
      let returns = 0;
      const all = await (await Pclntab.find(elf))!.allFunctions();
      for (const fn of all) {
        const code = await elf.readAt(elf.fileOffsetOf(fn.address), fn.size, 'code');
        try {
          returns += returnOffsets(f.arch, code, fn.address).length;
        } catch (err) {
          assert.ok(err instanceof DecodeError, String(err));
          failed.push(fn.name);
        }
      }
      // crypto/internal/boring/sig.StandardCrypto is a marker: bytes that are not instructions, in .text.
      const expected = all.some((fn) => fn.name === 'crypto/internal/boring/sig.StandardCrypto') && f.arch === 'x86_64' ? ['crypto/internal/boring/sig.StandardCrypto'] : [];
      assert.deepEqual(failed, expected, f.path);
      assert.ok(returns > all.length, `${f.path}: ${returns} returns in ${all.length} functions`);
    });
  }
});
