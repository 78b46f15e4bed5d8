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
 * Positional reads from one open file; every read is checked against the file size first.
 *
 * The reads are synchronous behind the async interface: looking up a handful of symbols takes hundreds
 * of small reads, which the page cache answers in microseconds, while a thread-pool round trip each
 * cost more main-thread time than the read itself (a third of the time tlstap took to find its targets).
 */
export class FileSource {
  private closed = false;
  /** Bytes read from the file so far. */
  bytesRead = 0;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: number,
  ) {}

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
      return new FileSource(path, fd, stat.size);
    } catch (err) {
      closeSync(fd);
      throw err instanceof ElfError ? err : fsError(path, 'cannot stat', err);
    }
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
        bytesRead = readSync(this.fd, buf, done, length - done, offset + done);
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
    closeSync(this.fd);
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
