import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ElfError } from './errors.js';

/** Largest single read this module makes; bigger structures are read in chunks. */
export const MAX_READ = 64 * 1024 * 1024;

function systemCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function fsError(path: string, action: string, err: unknown): ElfError {
  const code = systemCode(err);
  let hint: string | undefined;
  if (code === 'ENOENT') hint = 'check the path';
  else if (code === 'EACCES' || code === 'EPERM') hint = 'run with enough privileges to read it';
  const detail = err instanceof Error ? err.message : String(err);
  return new ElfError(path, `${action}: ${detail}`, {
    ...(hint === undefined ? {} : { hint }),
    ...(code === undefined ? {} : { code }),
    cause: err,
  });
}

/**
 * Where a FileSource's bytes come from: a local file, a file on another machine read through the agent
 * (src/remote/), or a slice of either (a library stored inside an APK).
 */
export interface PositionalFile {
  /** Size in bytes when opened. */
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; returns how many (0 only at the end). */
  read(buf: Buffer, offset: number, length: number, position: number): number | Promise<number>;
  close(): void | Promise<void>;
}

/**
 * A local file. The reads are synchronous behind the async interface: looking up a handful of symbols
 * takes hundreds of small reads, which the page cache answers in microseconds, while a thread-pool
 * round trip each cost more main-thread time than the read itself (a third of the time tlstap took to
 * find its targets).
 */
class LocalFile implements PositionalFile {
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  read(buf: Buffer, offset: number, length: number, position: number): number {
    return readSync(this.fd, buf, offset, length, position);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** The `size` bytes of `file` from `base` on, as a file of their own (an ELF stored uncompressed in a zip). */
export function sliceFile(file: PositionalFile, base: number, size: number): PositionalFile {
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(size) || base < 0 || size < 0 || base + size > file.size) {
    throw new RangeError(`slice of ${size} bytes at ${base} does not fit in a file of ${file.size} bytes`);
  }
  return {
    size,
    read: (buf, offset, length, position) => file.read(buf, offset, Math.min(length, size - position), base + position),
    close: () => file.close(),
  };
}

/** Positional reads from one open file; every read is checked against the file size first. */
export class FileSource {
  private closed = false;
  /** Bytes read from the file so far. */
  bytesRead = 0;
  readonly size: number;

  private constructor(
    readonly path: string,
    private readonly file: PositionalFile,
  ) {
    this.size = file.size;
  }

  /** Opens `path` read-only; it must be a regular file. */
  static async open(path: string): Promise<FileSource> {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw fsError(path, 'cannot open', err);
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new ElfError(path, 'not a regular file');
      return new FileSource(path, new LocalFile(fd, stat.size));
    } catch (err) {
      closeSync(fd);
      throw err instanceof ElfError ? err : fsError(path, 'cannot stat', err);
    }
  }

  /** Reads through `file`, which is known by `path` in messages; closing the source closes it. */
  static over(path: string, file: PositionalFile): FileSource {
    return new FileSource(path, file);
  }

  /** Throws an ElfError about this file. */
  fail(reason: string, hint?: string): never {
    throw new ElfError(this.path, reason, hint === undefined ? {} : { hint });
  }

  /** Throws an ElfError for data that contradicts itself or the file size. */
  corrupt(reason: string): never {
    this.fail(reason, 'the file is truncated or corrupt');
  }

  /** Checks that `size` bytes at `offset` lie inside the file and returns both as numbers. */
  range(offset: bigint, size: bigint, what: string): { offset: number; size: number } {
    if (offset < 0n || size < 0n || offset > BigInt(this.size) || size > BigInt(this.size) - offset) {
      this.corrupt(`${what} (offset ${offset}, ${size} bytes) extends past the end of the file (${this.size} bytes)`);
    }
    return { offset: Number(offset), size: Number(size) };
  }

  /** Reads exactly `length` bytes at `offset`; `what` names the data in error messages. */
  async read(offset: number, length: number, what: string): Promise<Buffer> {
    if (this.closed) this.fail('file is closed');
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset > this.size ||
      length > this.size - offset
    ) {
      this.corrupt(`${what} (offset ${offset}, ${length} bytes) extends past the end of the file (${this.size} bytes)`);
    }
    if (length > MAX_READ) this.fail(`${what} is too large to read at once (${length} bytes)`);
    // Every byte is overwritten below, or the read fails.
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        const n = this.file.read(buf, done, length - done, offset + done);
        bytesRead = typeof n === 'number' ? n : await n;
      } catch (err) {
        throw fsError(this.path, `cannot read ${what}`, err);
      }
      if (bytesRead === 0) this.fail(`file shrank while reading ${what}`);
      done += bytesRead;
      this.bytesRead += bytesRead;
    }
    return buf;
  }

  /** Closes the file; later reads throw ElfError. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }
}

/** Endian- and class-aware field reads from a buffer already read from the file. */
export class Decoder {
  constructor(
    readonly buf: Buffer,
    readonly littleEndian: boolean,
    readonly bits: 32 | 64,
  ) {}

  /** Unsigned byte at `at`. */
  u8(at: number): number {
    return this.buf.readUInt8(at);
  }

  /** Unsigned 16-bit field at `at`. */
  u16(at: number): number {
    return this.littleEndian ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }

  /** Unsigned 32-bit field at `at`. */
  u32(at: number): number {
    return this.littleEndian ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }

  /** Unsigned 64-bit field at `at`. */
  u64(at: number): bigint {
    return this.littleEndian ? this.buf.readBigUInt64LE(at) : this.buf.readBigUInt64BE(at);
  }

  /** Address-sized field (Elf32_Addr/Off/Word or Elf64_Addr/Off/Xword) at `at`, widened to bigint. */
  word(at: number): bigint {
    return this.bits === 64 ? this.u64(at) : BigInt(this.u32(at));
  }
}
