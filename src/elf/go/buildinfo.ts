// A Go binary's build info (.go.buildinfo): the Go version that built it and its module information,
// in both formats (pointers to Go strings before Go 1.18, inline strings from 1.18). Layout: Go's
// debug/buildinfo.
import { PF_W, PF_X, PT_LOAD, SHT_NOBITS } from '../constants.js';
import type { ElfFile } from '../elf-file.js';

/** "\xff Go buildinf:": the first 14 bytes of the 32-byte build info header. */
export const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

/** What a Go binary says about how it was built. */
export interface GoBuildInfo {
  /** The Go release, e.g. `go1.19.8`. */
  goVersion: string;
  /** Where the version came from: the build info, or (none there) a `go1.N` string in the read-only data. */
  versionSource: 'buildinfo' | 'rodata';
  /** The main package path (`path` line of the module info), when recorded. */
  path?: string;
  /** The main module and its version (`mod` line), when recorded. */
  module?: { path: string; version: string };
  /** Build settings (`build` lines: -ldflags, CGO_ENABLED, GOARCH, ...). */
  settings: Record<string, string>;
}

/** How far into the data segment the header is looked for when there is no .go.buildinfo section (as Go does). */
const DATA_SEARCH_BYTES = 64 * 1024;
/** The header is 16-byte aligned and 32 bytes long. */
const ALIGN = 16;
const HEADER_SIZE = 32;
/** Most bytes of a version or module info string we read. */
const MAX_STRING = 1024 * 1024;

/** An unsigned LEB128 varint at `at`, and the offset after it; undefined if it runs off the buffer. */
function uvarint(buf: Buffer, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length && shift < 49; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return { value, next: i + 1 };
    shift += 7;
  }
  return undefined;
}

/** The first 16-byte-aligned build info header in `buf`, as its offset. */
function findHeader(buf: Buffer): number | undefined {
  for (let i = buf.indexOf(BUILDINFO_MAGIC); i >= 0; i = buf.indexOf(BUILDINFO_MAGIC, i + 1)) {
    if (i % ALIGN === 0 && buf.length - i >= HEADER_SIZE) return i;
  }
  return undefined;
}

/** Strips the 16-byte sentinels Go wraps the module info in; '' when they are not there. */
function unwrapModinfo(mod: string): string {
  return mod.length >= 33 && mod[mod.length - 17] === '\n' ? mod.slice(16, -16) : '';
}

/** Parses the module info text (`path`, `mod`, `dep`, `build` lines). */
export function parseModinfo(text: string): Pick<GoBuildInfo, 'path' | 'module' | 'settings'> {
  const out: Pick<GoBuildInfo, 'path' | 'module' | 'settings'> = { settings: {} };
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.split('\t');
    if (kind === 'path' && fields[0] !== undefined) out.path = fields[0];
    else if (kind === 'mod' && fields[0] !== undefined) out.module = { path: fields[0], version: fields[1] ?? '' };
    else if (kind === 'build' && fields[0] !== undefined) {
      const eq = fields[0].indexOf('=');
      if (eq > 0) out.settings[fields[0].slice(0, eq)] = fields[0].slice(eq + 1);
    }
  }
  return out;
}

/** A Go string (pointer, length) read through its header at `address`. */
async function readGoString(elf: ElfFile, address: bigint, ptrSize: number, littleEndian: boolean): Promise<string> {
  const hdr = await elf.readAddress(address, 2 * ptrSize, 'Go string header');
  const word = (at: number): bigint =>
    ptrSize === 8
      ? littleEndian ? hdr.readBigUInt64LE(at) : hdr.readBigUInt64BE(at)
      : BigInt(littleEndian ? hdr.readUInt32LE(at) : hdr.readUInt32BE(at));
  const data = word(0);
  const length = word(ptrSize);
  if (length === 0n) return '';
  if (length > BigInt(MAX_STRING)) return '';
  return (await elf.readAddress(data, Number(length), 'Go string')).toString('utf8');
}

/** Decodes the header at `at` of `buf` (and what it points to); undefined when it holds no version. */
async function decode(elf: ElfFile, buf: Buffer, at: number): Promise<{ version: string; modinfo: string } | undefined> {
  const ptrSize = buf[at + 14]!;
  const flags = buf[at + 15]!;
  let version: string;
  let modinfo: string;
  if ((flags & 2) !== 0) {
    // Go 1.18+: two varint-prefixed strings right after the header.
    const v = uvarint(buf, at + HEADER_SIZE);
    if (v === undefined || v.next + v.value > buf.length) return undefined;
    version = buf.toString('utf8', v.next, v.next + v.value);
    const m = uvarint(buf, v.next + v.value);
    modinfo = m === undefined || m.next + m.value > buf.length ? '' : buf.toString('utf8', m.next, m.next + m.value);
  } else {
    // Before Go 1.18: pointers to runtime.buildVersion and runtime.modinfo, Go string headers.
    if (ptrSize !== 4 && ptrSize !== 8) return undefined;
    const littleEndian = flags === 0;
    const pointer = (off: number): bigint =>
      ptrSize === 8
        ? littleEndian ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off)
        : BigInt(littleEndian ? buf.readUInt32LE(off) : buf.readUInt32BE(off));
    version = await readGoString(elf, pointer(at + 16), ptrSize, littleEndian);
    modinfo = await readGoString(elf, pointer(at + 16 + ptrSize), ptrSize, littleEndian);
  }
  return version === '' ? undefined : { version, modinfo: unwrapModinfo(modinfo) };
}

/** A standalone `go1.N[.M]` string in .rodata: runtime.buildVersion's bytes, for binaries without build info. */
const VERSION_TEXT = /(?<![\w./-])go1\.\d{1,3}(?:\.\d{1,3})?(?:(?:rc|beta)\d{1,3})?(?=\x00)/;

/**
 * The build info of a Go binary: `.go.buildinfo`, else the start of the first writable data segment
 * (as Go's debug/buildinfo looks). A binary without it (some release pipelines drop the section) still
 * gets its Go version from the `runtime.buildVersion` text in `.rodata`, marked as such. Undefined when
 * neither is there.
 */
export async function readGoBuildInfo(elf: ElfFile): Promise<GoBuildInfo | undefined> {
  let buf: Buffer | undefined;
  const section = elf.section('.go.buildinfo');
  if (section !== undefined && section.type !== SHT_NOBITS) {
    buf = await elf.readAt(section.offset, Math.min(Number(section.size), MAX_STRING), '.go.buildinfo');
  } else {
    const data = elf.segments.find((s) => s.type === PT_LOAD && (s.flags & (PF_W | PF_X)) === PF_W);
    if (data !== undefined) buf = await elf.readAt(data.offset, Math.min(Number(data.filesz), DATA_SEARCH_BYTES), 'data segment');
  }
  const at = buf && findHeader(buf);
  const decoded = buf && at !== undefined ? await decode(elf, buf, at) : undefined;
  if (decoded !== undefined) {
    return { goVersion: decoded.version, versionSource: 'buildinfo', ...parseModinfo(decoded.modinfo) };
  }
  const text = await elf.findInSection('.rodata', VERSION_TEXT);
  return text === undefined ? undefined : { goVersion: text, versionSource: 'rodata', settings: {} };
}
