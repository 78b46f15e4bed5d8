// Reads a recording back: checks the header strictly, then yields every whole, intact frame and
// says why it stopped. Nothing in the file is trusted: lengths are bounded before any allocation.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from '../util/crc32.js';
import {
  FILE_MAGIC,
  FILE_PREFIX_SIZE,
  FRAME_HEADER_SIZE,
  FRAME_MAGIC,
  MAX_FRAME_PAYLOAD,
  MAX_HEADER_JSON,
  RECORD_FORMAT_VERSION,
  RECORD_PREFIX_SIZE,
  RecordFormatError,
  checkHeader,
  frameCrc,
  validateBatch,
} from './format.js';
import type { RecordFormatErrorKind, RecordHeader } from './format.js';

/** Why reading stopped: at the end of the file, or at `offset` where a frame is cut short or damaged. */
export type RecordStop =
  | { kind: 'end' }
  | { kind: 'truncated' | 'corrupt'; offset: number; detail: string };

/** A damaged stretch of a recording, skipped: reading went on at the next intact frame after it. */
export interface RecordDamage {
  /** File offset of the first frame that failed its checks. */
  offset: number;
  /** Bytes skipped, up to the next intact frame. */
  bytes: number;
  /** What was wrong with the first frame. */
  detail: string;
}

/** One frame of a recording: a batch of `count` length-prefixed records, found at file `offset`. */
export interface RecordBatch {
  batch: Buffer;
  count: number;
  /** File offset of the frame's header. */
  offset: number;
}

/** An open recording. */
export interface RecordReader {
  readonly path: string;
  readonly header: RecordHeader;
  /** File size when it was opened; frames written later are not read. */
  readonly fileSize: number;
  /** File offset of the first frame. */
  readonly dataOffset: number;
  /** Every whole, intact frame from the first; each call starts over. */
  batches(): AsyncIterable<RecordBatch>;
  /** The damaged stretches the last batches() iteration skipped to go on at the next intact frame. */
  damaged(): readonly RecordDamage[];
  /** Why the last batches() iteration stopped; throws if none has run to its end. */
  stopReason(): RecordStop;
  close(): Promise<void>;
}

// Reads are served from chunks of this size; bigger frames get a buffer of their own.
const CHUNK_SIZE = 1024 * 1024;

// Reads up to `length` bytes at `position`; returns fewer only if the file ends first.
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

class ChunkedReader {
  private chunk: Buffer = Buffer.alloc(0);
  private chunkStart = 0;
  /** A read started ahead of need, of the bytes from `position` on. */
  private ahead: { position: number; bytes: Promise<Buffer> } | undefined;

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
  ) {}

  /**
   * Starts reading `length` bytes at `position` now, so they are there when read() asks: the file
   * is read while the caller works on what it has.
   */
  readAhead(position: number, length: number): void {
    const end = Math.min(position + Math.max(length, CHUNK_SIZE), this.size);
    if (end <= position) return;
    const bytes = readAt(this.handle, position, end - position);
    // A read nobody waits for (the caller stopped early) must not fail unhandled.
    bytes.catch(() => undefined);
    this.ahead = { position, bytes };
  }

  // A fresh chunk is allocated on each refill, so slices handed out stay valid.
  async read(position: number, length: number): Promise<Buffer> {
    const end = Math.min(position + length, this.size);
    if (end <= position) return Buffer.alloc(0);
    if (this.ahead !== undefined) {
      const { position: aheadStart, bytes } = this.ahead;
      this.ahead = undefined;
      this.chunk = await bytes;
      this.chunkStart = aheadStart;
    }
    const chunkEnd = this.chunkStart + this.chunk.length;
    if (position >= this.chunkStart && end <= chunkEnd) {
      return this.chunk.subarray(position - this.chunkStart, end - this.chunkStart);
    }
    if (end - position >= CHUNK_SIZE / 2) return readAt(this.handle, position, end - position);
    this.chunk = await readAt(this.handle, position, Math.min(CHUNK_SIZE, this.size - position));
    this.chunkStart = position;
    return this.chunk.subarray(0, Math.min(end - position, this.chunk.length));
  }
}

// Names what a foreign file looks like, so the error can say what to do with it.
function sniff(head: Buffer): string {
  const hex = head.subarray(0, 4).toString('hex');
  if (hex === '0a0d0d0a') return 'it looks like a pcapng capture (open it with Wireshark)';
  if (['d4c3b2a1', 'a1b2c3d4', '4d3cb2a1', 'a1b23c4d'].includes(hex)) {
    return 'it looks like a pcap capture (open it with Wireshark)';
  }
  if (hex.startsWith('1f8b')) return 'it is gzip-compressed (decompress it first)';
  if (hex === '7f454c46') return 'it is an ELF executable';
  const first = head.subarray(0, 64).toString('latin1').trimStart()[0];
  if (first === '{' || first === '[') return 'it looks like JSON (tlstap text or JSON output, not a --record file)';
  return `it starts with bytes ${head.subarray(0, 8).toString('hex')}, not "TLSTAPRC"`;
}

interface ParsedHeader {
  header: RecordHeader;
  dataOffset: number;
}

async function readHeader(handle: FileHandle, path: string, size: number): Promise<ParsedHeader> {
  const err = (kind: RecordFormatErrorKind, message: string, offset?: number, cause?: unknown): RecordFormatError =>
    new RecordFormatError(message, { path, kind, ...(offset === undefined ? {} : { offset }), cause });
  const notOurs = `${path} is not a tlstap recording`;
  if (size === 0) throw err('not-a-recording', `${notOurs}: it is empty`, 0);
  const prefix = await readAt(handle, 0, Math.min(size, 64));
  const magicBytes = Math.min(prefix.length, FILE_MAGIC.length);
  if (!prefix.subarray(0, magicBytes).equals(FILE_MAGIC.subarray(0, magicBytes))) {
    throw err('not-a-recording', `${notOurs}: ${sniff(prefix)}; replay reads files written by \`tlstap --record\``, 0);
  }
  if (prefix.length < FILE_PREFIX_SIZE) {
    throw err(
      'truncated',
      `${path} is a tlstap recording cut short inside its ${FILE_PREFIX_SIZE}-byte prefix (${prefix.length} bytes): it holds no data`,
      prefix.length,
    );
  }
  const version = prefix.readUInt32LE(8);
  const jsonLength = prefix.readUInt32LE(12);
  const jsonCrc = prefix.readUInt32LE(16);
  if (version > RECORD_FORMAT_VERSION) {
    let writer = '';
    // Name the tlstap that wrote it when its header is readable; a newer format may change that too.
    if (jsonLength > 0 && jsonLength <= MAX_HEADER_JSON && FILE_PREFIX_SIZE + jsonLength <= size) {
      try {
        const peek: unknown = JSON.parse((await readAt(handle, FILE_PREFIX_SIZE, jsonLength)).toString('utf8'));
        const v = (peek as { tlstapVersion?: unknown } | null)?.tlstapVersion;
        if (typeof v === 'string') writer = ` by tlstap ${v}`;
      } catch {
        // The version number alone is enough to refuse the file.
      }
    }
    throw err(
      'newer-version',
      `${path} was written${writer} in recording format version ${version}; this tlstap reads format versions up to ${RECORD_FORMAT_VERSION}: upgrade tlstap to replay it`,
      8,
    );
  }
  if (version === 0) throw err('corrupt', `${path} is a damaged tlstap recording: format version 0 does not exist`, 8);
  if (jsonLength === 0 || jsonLength > MAX_HEADER_JSON) {
    throw err(
      'corrupt',
      `${path} is a damaged tlstap recording: its header claims ${jsonLength} bytes of JSON (1..${MAX_HEADER_JSON} allowed)`,
      12,
    );
  }
  const dataOffset = FILE_PREFIX_SIZE + jsonLength;
  if (dataOffset > size) {
    throw err(
      'truncated',
      `${path} is a tlstap recording cut short inside its header (${size} of ${dataOffset} bytes): it holds no data`,
      size,
    );
  }
  const json = await readAt(handle, FILE_PREFIX_SIZE, jsonLength);
  if (json.length < jsonLength) throw err('truncated', `${path} shrank while its header was read`, FILE_PREFIX_SIZE + json.length);
  if (crc32(json) !== jsonCrc) {
    throw err('corrupt', `${path} is a damaged tlstap recording: its JSON header fails its CRC32 check`, FILE_PREFIX_SIZE);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch (cause) {
    throw err('corrupt', `${path} is a damaged tlstap recording: its header is not valid JSON`, FILE_PREFIX_SIZE, cause);
  }
  const problem = checkHeader(parsed);
  if (problem !== undefined) {
    throw err('corrupt', `${path} is a damaged tlstap recording: ${problem}`, FILE_PREFIX_SIZE);
  }
  const header = parsed as RecordHeader;
  if (header.formatVersion !== version) {
    throw err(
      'corrupt',
      `${path} is a damaged tlstap recording: its JSON header says format ${header.formatVersion}, its prefix ${version}`,
      FILE_PREFIX_SIZE,
    );
  }
  return { header, dataOffset };
}

class FileRecordReader implements RecordReader {
  private stop: RecordStop | undefined;
  private damage: RecordDamage[] = [];
  private closed = false;

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly fileSize: number,
    readonly header: RecordHeader,
    readonly dataOffset: number,
  ) {}

  batches(): AsyncIterable<RecordBatch> {
    return { [Symbol.asyncIterator]: () => this.frames() };
  }

  damaged(): readonly RecordDamage[] {
    return this.damage;
  }

  stopReason(): RecordStop {
    if (this.stop === undefined) {
      throw new Error(`stopReason() of ${this.path}: no batches() iteration has run to its end yet`);
    }
    return this.stop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private async *frames(): AsyncGenerator<RecordBatch> {
    if (this.closed) throw new Error(`batches() of ${this.path}: the reader is closed`);
    this.stop = undefined;
    this.damage = [];
    const reader = new ChunkedReader(this.handle, this.fileSize);
    let offset = this.dataOffset;
    for (let index = 0; ; index++) {
      if (offset === this.fileSize) {
        this.stop = { kind: 'end' };
        return;
      }
      const frame = await readFrame(reader, offset, this.fileSize, `frame ${index} at byte ${offset}`);
      if ('kind' in frame) {
        // Damage in the middle of the file: go on at the next frame that is whole and intact.
        const next = frame.resync ? await findFrame(reader, offset + 1, this.fileSize) : undefined;
        if (next === undefined) {
          this.stop = { kind: frame.kind, offset, detail: frame.detail };
          return;
        }
        this.damage.push({ offset, bytes: next - offset, detail: frame.detail });
        offset = next;
        continue;
      }
      offset = frame.offset + FRAME_HEADER_SIZE + frame.batch.length;
      // The next frame is likely about as big as this one.
      reader.readAhead(offset, FRAME_HEADER_SIZE + frame.batch.length);
      yield frame;
    }
  }
}

/** Why the bytes at an offset are not a frame; `resync` when a later intact frame may follow. */
interface FrameProblem {
  kind: 'truncated' | 'corrupt';
  detail: string;
  resync: boolean;
}

/** The whole, intact frame at `offset`, or what is wrong there. */
async function readFrame(reader: ChunkedReader, offset: number, size: number, at: string): Promise<RecordBatch | FrameProblem> {
  const corrupt = (detail: string): FrameProblem => ({ kind: 'corrupt', detail, resync: true });
  const head = await reader.read(offset, FRAME_HEADER_SIZE);
  if (head.length < FRAME_HEADER_SIZE) {
    return { kind: 'truncated', resync: false, detail: `the file ends ${head.length} bytes into the ${FRAME_HEADER_SIZE}-byte header of ${at}` };
  }
  if (!head.subarray(0, FRAME_MAGIC.length).equals(FRAME_MAGIC)) {
    // A crash can leave a tail of zeros where the file system had allocated but not yet written.
    return head.every((b) => b === 0)
      ? { kind: 'truncated', resync: true, detail: `${at} is zero bytes: the rest of the file was never written` }
      : corrupt(`${at} does not start with the frame marker "TFRM"`);
  }
  const length = head.readUInt32LE(4);
  const count = head.readUInt32LE(8);
  if (length > MAX_FRAME_PAYLOAD) return corrupt(`${at} claims ${length} payload bytes, more than the ${MAX_FRAME_PAYLOAD}-byte limit`);
  if (count === 0 || count * RECORD_PREFIX_SIZE > length) return corrupt(`${at} claims ${count} records in ${length} bytes`);
  const available = size - offset - FRAME_HEADER_SIZE;
  if (length > available) {
    return { kind: 'truncated', resync: true, detail: `${at} needs ${length} payload bytes but the file ends after ${available}` };
  }
  const payload = await reader.read(offset + FRAME_HEADER_SIZE, length);
  if (payload.length < length) return { kind: 'truncated', resync: false, detail: `the file shrank while ${at} was read` };
  if (frameCrc(head, payload) !== head.readUInt32LE(12)) return corrupt(`${at} fails its CRC32 check`);
  const problem = validateBatch(payload, count);
  if (problem !== undefined) return corrupt(`${at}: ${problem}`);
  return { batch: payload, count, offset };
}

/** Bytes searched at a time for the next frame marker. */
const SEARCH_WINDOW = 64 * 1024;

/** The offset of the first whole, intact frame at or after `from`, if any. */
async function findFrame(reader: ChunkedReader, from: number, size: number): Promise<number | undefined> {
  for (let pos = from; pos + FRAME_HEADER_SIZE <= size; ) {
    const window = await reader.read(pos, SEARCH_WINDOW);
    let at = window.indexOf(FRAME_MAGIC);
    while (at >= 0) {
      const frame = await readFrame(reader, pos + at, size, 'candidate');
      if (!('kind' in frame)) return pos + at;
      // Slices stay valid when readFrame moves the reader's chunk (each refill is a new buffer).
      at = window.indexOf(FRAME_MAGIC, at + 1);
    }
    // A marker cut by the window's end is found by the next window.
    pos += Math.max(1, window.length - (FRAME_MAGIC.length - 1));
    if (window.length < SEARCH_WINDOW) break;
  }
  return undefined;
}

/**
 * Opens a recording and checks its header; rejects with RecordFormatError when the file is not a
 * recording, is of a newer format, or is too damaged or short to have a header.
 */
export async function openRecordFile(path: string): Promise<RecordReader> {
  // O_NONBLOCK keeps a FIFO at the path from blocking the open; it is refused just below.
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied (EACCES)' : (cause as Error).message;
    throw new RecordFormatError(`cannot read ${path}: ${why}`, { path, kind: 'unreadable', cause });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) {
      throw new RecordFormatError(`${path} is not a tlstap recording: it is not a regular file`, {
        path,
        kind: 'not-a-recording',
      });
    }
    const { header, dataOffset } = await readHeader(handle, path, st.size);
    return new FileRecordReader(path, handle, st.size, header, dataOffset);
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
