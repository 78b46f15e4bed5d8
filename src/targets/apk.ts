// Native libraries stored inside an APK (a zip): Android maps an uncompressed one straight from the APK
// (extractNativeLibs=false), so its ELF starts at the entry's data offset in the zip.
import type { PositionalFile } from '../elf/index.js';

/** One stored library in an APK. */
export interface ApkLibrary {
  /** The entry's name, e.g. lib/arm64-v8a/libssl.so. */
  name: string;
  /** The ABI directory: arm64-v8a, armeabi-v7a, x86_64, x86. */
  abi: string;
  /** Where the library's bytes start in the APK: its ELF header is there. */
  dataOffset: number;
  size: number;
  /** 0 for stored (mappable); a compressed library is extracted at install and is not mapped from the APK. */
  method: number;
}

/** An APK that is not a zip we can read; `reason` says what is wrong. */
export class ApkFormatError extends Error {
  override readonly name = 'ApkFormatError';
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
/** The end record is followed by a comment of at most 64 KiB. */
const EOCD_SEARCH = EOCD_SIZE + 0xffff;
/** Largest central directory read (an APK with tens of thousands of entries has a few MiB). */
const MAX_CENTRAL_DIRECTORY = 64 << 20;
const LIBRARY_ENTRY = /^lib\/([^/]+)\/[^/]+\.so$/;

async function readAt(file: PositionalFile, offset: number, length: number, what: string): Promise<Buffer> {
  if (offset < 0 || length < 0 || offset + length > file.size) {
    throw new ApkFormatError(`${what} (offset ${offset}, ${length} bytes) lies outside the ${file.size}-byte file`);
  }
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = await file.read(buf, done, length - done, offset + done);
    if (n === 0) throw new ApkFormatError(`the file ended while reading ${what}`);
    done += n;
  }
  return buf;
}

/** The native libraries (lib/ABI/*.so) an APK holds, from its central directory and local headers. */
export async function apkLibraries(file: PositionalFile): Promise<ApkLibrary[]> {
  const tailSize = Math.min(file.size, EOCD_SEARCH);
  const tail = await readAt(file, file.size - tailSize, tailSize, 'the end of the zip');
  let eocd = -1;
  for (let at = tail.length - EOCD_SIZE; at >= 0; at--) {
    if (tail.readUInt32LE(at) === EOCD_SIGNATURE) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw new ApkFormatError('no end-of-central-directory record: not a zip');
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) throw new ApkFormatError('a zip64 archive (not supported)');
  if (cdSize > MAX_CENTRAL_DIRECTORY) throw new ApkFormatError(`central directory of ${cdSize} bytes is too large`);
  const cd = await readAt(file, cdOffset, cdSize, 'the central directory');

  const libraries: ApkLibrary[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (cd.length - at < CENTRAL_HEADER_SIZE || cd.readUInt32LE(at) !== CENTRAL_SIGNATURE) {
      throw new ApkFormatError(`central directory entry ${i} at byte ${cdOffset + at} is damaged`);
    }
    const method = cd.readUInt16LE(at + 10);
    const size = cd.readUInt32LE(at + 20);
    const nameLength = cd.readUInt16LE(at + 28);
    const next = at + CENTRAL_HEADER_SIZE + nameLength + cd.readUInt16LE(at + 30) + cd.readUInt16LE(at + 32);
    const localOffset = cd.readUInt32LE(at + 42);
    if (next > cd.length) throw new ApkFormatError(`central directory entry ${i} runs past the directory`);
    const name = cd.toString('utf8', at + CENTRAL_HEADER_SIZE, at + CENTRAL_HEADER_SIZE + nameLength);
    at = next;
    const abi = LIBRARY_ENTRY.exec(name)?.[1];
    if (abi === undefined) continue;
    // The data starts after the local header, whose name and extra field may differ from the central one's.
    const local = await readAt(file, localOffset, LOCAL_HEADER_SIZE, `the local header of ${name}`);
    if (local.readUInt32LE(0) !== LOCAL_SIGNATURE) throw new ApkFormatError(`the local header of ${name} is damaged`);
    const dataOffset = localOffset + LOCAL_HEADER_SIZE + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataOffset + size > file.size) throw new ApkFormatError(`${name} runs past the end of the zip`);
    libraries.push({ name, abi, dataOffset, size, method });
  }
  return libraries;
}
