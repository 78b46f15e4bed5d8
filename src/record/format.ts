// The byte layout of a tlstap recording, shared by the writer and the reader.
// docs/record-format.md describes it for people; this file states it for the code.
import { crc32 } from '../util/crc32.js';

/** Version of the recording format this build writes and the newest it reads. */
export const RECORD_FORMAT_VERSION = 1;

/** The 8 bytes every recording starts with. */
export const FILE_MAGIC: Buffer = Buffer.from('TLSTAPRC', 'latin1');

/** Bytes before the JSON header: magic, format version, JSON length, JSON CRC32. */
export const FILE_PREFIX_SIZE = 20;

/** Largest JSON header a reader accepts. */
export const MAX_HEADER_JSON = 16 * 1024 * 1024;

/** The 4 bytes every frame starts with. */
export const FRAME_MAGIC: Buffer = Buffer.from('TFRM', 'latin1');

/** Bytes of a frame header: marker, payload length, record count, CRC32. */
export const FRAME_HEADER_SIZE = 16;

/** Largest frame payload (one batch) a writer writes and a reader accepts. */
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024;

/** Bytes of the little-endian length in front of each record inside a batch. */
export const RECORD_PREFIX_SIZE = 4;

/** What a recording's JSON header holds. */
export interface RecordHeader {
  formatVersion: number;
  /** Version of the tlstap that wrote the file. */
  tlstapVersion: string;
  /** ISO 8601 time the recording started. */
  createdAt: string;
  /** The EventLayout the records were written with (opaque here). */
  layout: Record<string, unknown>;
  /** Byte order of the records' fields (the framing is always little-endian). */
  littleEndian: boolean;
  /** Probed files, indexed by the records' file index. */
  files: string[];
  /** Decimal bigint: wall-clock ns = CLOCK_MONOTONIC ns + this offset. */
  monotonicToWallNs: string;
  host: { kernel: string; arch: string; hostname: string };
  /** Capture settings (opaque here). */
  settings: Record<string, unknown>;
}

/** Why a file could not be opened as a recording. */
export type RecordFormatErrorKind = 'unreadable' | 'not-a-recording' | 'newer-version' | 'truncated' | 'corrupt';

/** A file that is not a readable tlstap recording; `offset` is where the problem is. */
export class RecordFormatError extends Error {
  override readonly name = 'RecordFormatError';
  readonly path: string;
  readonly offset?: number;
  readonly kind: RecordFormatErrorKind;

  constructor(
    message: string,
    info: { path: string; kind: RecordFormatErrorKind; offset?: number; cause?: unknown },
  ) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.path = info.path;
    this.kind = info.kind;
    if (info.offset !== undefined) this.offset = info.offset;
  }
}

/** A batch whose length-prefixed records do not add up to its size. */
export class BatchFormatError extends Error {
  override readonly name = 'BatchFormatError';
  /** Index of the first record that does not fit. */
  readonly recordIndex: number;
  /** Byte offset inside the batch where it goes wrong. */
  readonly offset: number;

  constructor(message: string, recordIndex: number, offset: number) {
    super(message);
    this.recordIndex = recordIndex;
    this.offset = offset;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks a parsed JSON header; returns what is wrong with it, or undefined when it is sound. */
export function checkHeader(value: unknown): string | undefined {
  if (!isPlainObject(value)) return 'the header is not a JSON object';
  const h = value;
  if (!Number.isSafeInteger(h.formatVersion)) return 'formatVersion is not an integer';
  if (typeof h.tlstapVersion !== 'string') return 'tlstapVersion is not a string';
  if (typeof h.createdAt !== 'string' || Number.isNaN(Date.parse(h.createdAt))) {
    return 'createdAt is not an ISO date';
  }
  if (!isPlainObject(h.layout)) return 'layout is not an object';
  if (typeof h.littleEndian !== 'boolean') return 'littleEndian is not a boolean';
  if (!Array.isArray(h.files) || !h.files.every((f) => typeof f === 'string')) {
    return 'files is not an array of strings';
  }
  if (typeof h.monotonicToWallNs !== 'string' || !/^-?[0-9]+$/.test(h.monotonicToWallNs)) {
    return 'monotonicToWallNs is not a decimal integer string';
  }
  const host = h.host;
  if (
    !isPlainObject(host) ||
    typeof host.kernel !== 'string' ||
    typeof host.arch !== 'string' ||
    typeof host.hostname !== 'string'
  ) {
    return 'host is not {kernel, arch, hostname} strings';
  }
  if (!isPlainObject(h.settings)) return 'settings is not an object';
  return undefined;
}

/** The file prefix and JSON header for `header`; throws a TypeError if the header is unsound. */
export function encodeFileHeader(header: Omit<RecordHeader, 'formatVersion'>): Buffer {
  const { formatVersion: _ignored, ...rest } = header as RecordHeader;
  const full = { formatVersion: RECORD_FORMAT_VERSION, ...rest };
  const problem = checkHeader(full);
  if (problem !== undefined) throw new TypeError(`invalid recording header: ${problem}`);
  const json = Buffer.from(JSON.stringify(full), 'utf8');
  if (json.length > MAX_HEADER_JSON) {
    throw new RangeError(`recording header is ${json.length} bytes of JSON; the limit is ${MAX_HEADER_JSON}`);
  }
  const out = Buffer.allocUnsafe(FILE_PREFIX_SIZE + json.length);
  FILE_MAGIC.copy(out, 0);
  out.writeUInt32LE(RECORD_FORMAT_VERSION, 8);
  out.writeUInt32LE(json.length, 12);
  out.writeUInt32LE(crc32(json), 16);
  json.copy(out, FILE_PREFIX_SIZE);
  return out;
}

/** CRC32 of a frame: over its length and count fields (header bytes 4..11), then its payload. */
export function frameCrc(frameHeader: Buffer, payload: Uint8Array): number {
  return crc32(payload, crc32(frameHeader.subarray(4, 12)));
}

/** The 16-byte header of the frame that carries `payload` holding `count` records. */
export function encodeFrameHeader(payload: Uint8Array, count: number): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  FRAME_MAGIC.copy(head, 0);
  head.writeUInt32LE(payload.length, 4);
  head.writeUInt32LE(count, 8);
  head.writeUInt32LE(frameCrc(head, payload), 12);
  return head;
}

/** What is wrong with the framing of `count` records in `batch`, or undefined when it is exact. */
export function validateBatch(batch: Uint8Array, count: number): string | undefined {
  if (!Number.isSafeInteger(count) || count < 0) return `record count ${count} is not a non-negative integer`;
  const view = Buffer.isBuffer(batch) ? batch : Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
  const size = view.length;
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (size - off < RECORD_PREFIX_SIZE) {
      return `record ${i} of ${count}: its length prefix at byte ${off} runs past the end of the ${size}-byte batch`;
    }
    const len = view.readUInt32LE(off);
    off += RECORD_PREFIX_SIZE;
    if (len > size - off) {
      return `record ${i} of ${count}: its ${len} bytes at byte ${off} run past the end of the ${size}-byte batch`;
    }
    off += len;
  }
  if (off !== size) return `${size - off} bytes are left over after the ${count} records of the ${size}-byte batch`;
  return undefined;
}

function throwIfInvalid(batch: Uint8Array, count: number): Buffer {
  const problem = validateBatch(batch, count);
  if (problem !== undefined) {
    // Locate the failing record again for the error's fields; this path is rare.
    const view = Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
    let off = 0;
    let i = 0;
    while (i < count && view.length - off >= RECORD_PREFIX_SIZE) {
      const next = off + RECORD_PREFIX_SIZE + view.readUInt32LE(off);
      if (next > view.length) break;
      off = next;
      i++;
    }
    throw new BatchFormatError(`inconsistent batch framing: ${problem}`, i, off);
  }
  return Buffer.isBuffer(batch) ? batch : Buffer.from(batch.buffer, batch.byteOffset, batch.byteLength);
}

/**
 * Yields `[offset, length]` of each record's bytes (after its length prefix) in a batch.
 * Checks the whole batch first and throws a BatchFormatError, before yielding anything, if the
 * records do not add up to exactly the batch's size.
 */
export function* iterateBatchRecords(batch: Uint8Array, count: number): Generator<[offset: number, length: number]> {
  const view = throwIfInvalid(batch, count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const len = view.readUInt32LE(off);
    off += RECORD_PREFIX_SIZE;
    yield [off, len];
    off += len;
  }
}

/** Calls `fn(offset, length)` for each record of a batch, without allocating; throws like iterateBatchRecords. */
export function forEachBatchRecord(
  batch: Uint8Array,
  count: number,
  fn: (offset: number, length: number, index: number) => void,
): void {
  const view = throwIfInvalid(batch, count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const len = view.readUInt32LE(off);
    off += RECORD_PREFIX_SIZE;
    fn(off, len, i);
    off += len;
  }
}

/** Frames records the way the native side does (`[u32 LE length][bytes]`...); for tests and tools. */
export function encodeBatch(records: readonly Uint8Array[]): { batch: Buffer; count: number } {
  let size = 0;
  for (const r of records) size += RECORD_PREFIX_SIZE + r.length;
  const batch = Buffer.allocUnsafe(size);
  let off = 0;
  for (const r of records) {
    batch.writeUInt32LE(r.length, off);
    off += RECORD_PREFIX_SIZE;
    batch.set(r, off);
    off += r.length;
  }
  return { batch, count: records.length };
}
