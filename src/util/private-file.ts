import { randomBytes } from 'node:crypto';
import { closeSync, constants, createWriteStream, fstatSync, lstatSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { basename, dirname, join, resolve } from 'node:path';

/** An output file that cannot be opened as asked, with what to do about it. */
export class OutputFileError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`cannot write ${path}: ${reason}`);
    this.name = 'OutputFileError';
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function openError(path: string, err: unknown): OutputFileError {
  const code = errnoCode(err);
  switch (code) {
    case 'ENOENT':
      return new OutputFileError(path, `directory ${dirname(path)} does not exist`);
    case 'EACCES':
    case 'EROFS':
      return new OutputFileError(path, `directory ${dirname(path)} is not writable (${code})`);
    case 'ELOOP':
      return new OutputFileError(path, 'it is a symbolic link; tlstap does not write through links');
    case 'EISDIR':
      return new OutputFileError(path, 'it is a directory');
    default:
      return new OutputFileError(path, (err as Error).message);
  }
}

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Opens `path` for writing as a new file of mode 0600 (captures hold passwords and tokens). A file
 * already there is never written into: a new one is made beside it and renamed over it, so its owner,
 * other hard links to it and fds opened on it beforehand keep the old bytes and never see a capture.
 * A symlink at the path is refused; a device or FIFO (/dev/null, a named pipe) is written as it is.
 */
export function openPrivateFile(path: string): number {
  let existing;
  try {
    existing = lstatSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw openError(path, err);
  }
  try {
    if (existing === undefined) return openSync(path, CREATE_NEW, 0o600);
    if (existing.isSymbolicLink()) throw Object.assign(new Error('symbolic link'), { code: 'ELOOP' });
    if (existing.isDirectory()) throw Object.assign(new Error('directory'), { code: 'EISDIR' });
    if (!existing.isFile()) return openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    return replaceFile(path);
  } catch (err) {
    if (err instanceof OutputFileError) throw err;
    throw openError(path, err);
  }
}

/** A new 0600 file renamed over the regular file at `path`; returns its fd. */
function replaceFile(path: string): number {
  const temp = join(dirname(path), `.${basename(path)}.tlstap-${randomBytes(6).toString('hex')}`);
  const fd = openSync(temp, CREATE_NEW, 0o600);
  try {
    renameSync(temp, path);
  } catch (err) {
    closeSync(fd);
    unlinkSync(temp);
    throw err;
  }
  return fd;
}

/**
 * Bytes an output file's stream holds before it asks for a drain: a few write batches (Node's
 * default, 16 KiB, is below one, so every write would pause delivery).
 */
const WRITE_MARK = 1024 * 1024;

/**
 * A stream that writes to a regular file (or /dev/null) synchronously, as Node's own stdout does for
 * files: writes there never wait for a reader, and doing them on the JS thread saves each one a trip
 * through the thread pool and back (write batches are large, so there are few of them).
 */
export class FileWriteStream extends Writable {
  constructor(readonly fd: number) {
    super({ highWaterMark: WRITE_MARK });
  }

  /** Whether writeNow() may write: nothing given to write() is still queued, and the stream is open. */
  get canWriteNow(): boolean {
    return this.writableLength === 0 && this.writableCorked === 0 && !this.destroyed && !this.writableEnded;
  }

  /**
   * Writes `chunk` to the file before returning, past the stream's queue (only when canWriteNow, so
   * the order of bytes is kept): the caller may reuse `chunk` at once. Throws what writeSync throws.
   */
  writeNow(chunk: Uint8Array): void {
    for (let done = 0; done < chunk.length; ) done += writeSync(this.fd, chunk, done, chunk.length - done);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.writeNow(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    try {
      for (const { chunk } of chunks) this.writeNow(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    try {
      closeSync(this.fd);
    } catch (err) {
      callback(error ?? (err as Error));
      return;
    }
    callback(error);
  }
}

/** Whether writes to `fd` never wait for a reader: a regular file, or /dev/null. */
function neverWaits(fd: number): boolean {
  const stat = fstatSync(fd);
  return stat.isFile() || (stat.isCharacterDevice() && stat.rdev === statSync('/dev/null').rdev);
}

/**
 * A write stream on a private file (see openPrivateFile): a FileWriteStream where writes never wait
 * for a reader, else (a FIFO, a terminal) Node's asynchronous one.
 */
export function createPrivateWriteStream(path: string): Writable {
  const fd = openPrivateFile(path);
  if (neverWaits(fd)) return new FileWriteStream(fd);
  return createWriteStream(path, { fd, highWaterMark: WRITE_MARK });
}

/** A file a run reads or writes, and the option that names it. */
export interface NamedPath {
  /** The option as the user wrote it: `-o`, `--har`, `the recording`. */
  what: string;
  path: string;
}

/** What makes two paths the same file: the resolved path, and the file's device and inode when it exists. */
function identity(path: string): { real: string; inode?: string; shared?: boolean } {
  let real = resolve(path);
  try {
    real = join(realpathSync(dirname(real)), basename(real));
  } catch {
    // A missing directory is reported when the file is opened.
  }
  try {
    const st = statSync(path, { bigint: true });
    return { real, inode: `${st.dev}:${st.ino}`, shared: !st.isFile() };
  } catch {
    return { real };
  }
}

/**
 * Refuses two of a run's files that are one file (by resolved path, or by device and inode: a hard link
 * or a symlink to it): one output would destroy the other, or the input it is made from.
 */
export function checkDistinctPaths(paths: readonly NamedPath[]): void {
  const seen: { named: NamedPath; id: ReturnType<typeof identity> }[] = [];
  for (const named of paths) {
    if (named.path === '-') continue;
    const id = identity(named.path);
    // A device or a pipe (-o /dev/null -w /dev/null) may take several outputs.
    if (id.shared === true) continue;
    const same = seen.find((s) => s.id.real === id.real || (id.inode !== undefined && s.id.inode === id.inode));
    if (same) {
      throw new OutputFileError(named.path, `${same.named.what} ${same.named.path} and ${named.what} ${named.path} are the same file; give each its own path`);
    }
    seen.push({ named, id });
  }
}
