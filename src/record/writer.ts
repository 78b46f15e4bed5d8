// Writes a recording: the file header once, then one frame per batch, in order, off the event loop.
import { constants } from 'node:fs';
import { lstat, open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import {
  FRAME_HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  RECORD_PREFIX_SIZE,
  encodeFileHeader,
  encodeFrameHeader,
} from './format.js';
import type { RecordHeader } from './format.js';

/** Creating or writing a recording failed; carries the path and the bytes that reached the file. */
export class RecordWriteError extends Error {
  override readonly name = 'RecordWriteError';
  readonly path: string;
  /** Bytes of the file (header included) written before the failure. */
  readonly bytesWritten: number;
  /** errno code (ENOSPC, EPIPE, ...) or ELOOP / ENOTREG for a refused output path. */
  readonly code: string | undefined;

  constructor(message: string, info: { path: string; bytesWritten: number; code?: string; cause?: unknown }) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.path = info.path;
    this.bytesWritten = info.bytesWritten;
    this.code = info.code;
  }
}

/** Options of RecordWriter.create. */
export interface RecordWriterOptions {
  /** Called once, on the first write failure; close() rejects with the same error. */
  onError?: (err: RecordWriteError) => void;
  /** Batches queued beyond this many bytes (disk slower than events) are dropped and counted. Default 256 MiB. */
  maxQueuedBytes?: number;
}

/** What a writer did; every dropped batch is counted. */
export interface RecordWriterStats {
  bytesWritten: number;
  batchesWritten: number;
  recordsWritten: number;
  /** Batches given to writeBatch that never reached the file (queue full or after a failure). */
  batchesDropped: number;
  recordsDropped: number;
  bytesDropped: number;
}

interface Frame {
  head: Buffer;
  payload: Buffer;
  count: number;
}

const DEFAULT_MAX_QUEUED = 256 * 1024 * 1024;
// Frames per writev call: two iovecs each, well under IOV_MAX (1024).
const FRAMES_PER_WRITE = 256;

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Creates `path` as a new file with mode 0600, never through a symlink.
 * The file is always a fresh inode made with O_CREAT|O_EXCL|O_NOFOLLOW: an existing regular file is
 * unlinked first (so a hard link planted at the path is not written through), while a symlink or any
 * other non-regular file at the path is refused. Symlinks in the parent directories are followed.
 */
async function createFresh(path: string): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fail = (message: string, code: string | undefined, cause?: unknown): RecordWriteError =>
    new RecordWriteError(message, { path, bytesWritten: 0, ...(code === undefined ? {} : { code }), cause });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await open(path, flags, 0o600);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') {
        throw fail(`cannot create recording ${path}: ${describe(err)}`, errnoCode(err), err);
      }
    }
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw fail(`cannot create recording ${path}: ${describe(err)}`, errnoCode(err), err);
    }
    if (st.isSymbolicLink()) {
      throw fail(
        `refusing to write recording ${path}: it is a symbolic link (remove it or choose another path)`,
        'ELOOP',
      );
    }
    if (!st.isFile()) {
      throw fail(`refusing to write recording ${path}: it exists and is not a regular file`, 'ENOTREG');
    }
    try {
      await unlink(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') {
        throw fail(`cannot replace ${path}: ${describe(err)}`, errnoCode(err), err);
      }
    }
  }
  throw fail(`cannot create recording ${path}: another process keeps creating a file at that path`, 'EEXIST');
}

/**
 * Appends batches to a recording file. writeBatch() only queues; frames go out in order through
 * writev on the libuv thread pool, several queued frames per call. Call close() to flush.
 */
export class RecordWriter {
  /** The file being written. */
  readonly path: string;
  private readonly handle: FileHandle;
  private readonly onError: ((err: RecordWriteError) => void) | undefined;
  private readonly maxQueuedBytes: number;
  private queue: Frame[] = [];
  private queuedBytes = 0;
  private draining: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private failure: RecordWriteError | undefined;
  private written = 0;
  private readonly counts = { batchesWritten: 0, recordsWritten: 0, batchesDropped: 0, recordsDropped: 0, bytesDropped: 0 };

  private constructor(path: string, handle: FileHandle, headerBytes: number, options: RecordWriterOptions) {
    this.path = path;
    this.handle = handle;
    this.written = headerBytes;
    this.onError = options.onError;
    this.maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
  }

  /** Creates `path` (mode 0600, refusing a symlink) and writes the header; rejects with RecordWriteError. */
  static async create(
    path: string,
    header: Omit<RecordHeader, 'formatVersion'>,
    options: RecordWriterOptions = {},
  ): Promise<RecordWriter> {
    const prefix = encodeFileHeader(header);
    const handle = await createFresh(path);
    let done = 0;
    try {
      // The creation mode is masked by the umask; state 0600 exactly.
      await handle.chmod(0o600);
      while (done < prefix.length) {
        const { bytesWritten } = await handle.write(prefix, done, prefix.length - done);
        if (bytesWritten === 0) throw new Error('write() wrote 0 bytes');
        done += bytesWritten;
      }
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw new RecordWriteError(`writing recording ${path} failed after ${done} bytes: ${describe(err)}`, {
        path,
        bytesWritten: done,
        ...(errnoCode(err) === undefined ? {} : { code: errnoCode(err) }),
        cause: err,
      });
    }
    return new RecordWriter(path, handle, prefix.length, options);
  }

  /** Bytes that reached the file so far, header included. */
  get bytesWritten(): number {
    return this.written;
  }

  /** Bytes of frames queued or being written, not yet wholly in the file. */
  get queuedByteCount(): number {
    return this.queuedBytes;
  }

  /** The first write failure, once there has been one. */
  get error(): RecordWriteError | undefined {
    return this.failure;
  }

  /** Counts of written and dropped batches. */
  get stats(): RecordWriterStats {
    return { bytesWritten: this.written, ...this.counts };
  }

  /**
   * Queues one batch (`count` records framed `[u32 LE length][bytes]`) as one frame. The writer keeps
   * `batch` until it is written: do not modify it afterwards. Throws on arguments that cannot be a
   * batch; after a write failure, batches are dropped and counted.
   */
  writeBatch(batch: Buffer, count: number): void {
    if (this.closing !== undefined) throw new Error(`RecordWriter(${this.path}): writeBatch() after close()`);
    if (!Buffer.isBuffer(batch)) throw new TypeError('writeBatch: batch must be a Buffer');
    if (!Number.isSafeInteger(count) || count < 0 || count > 0xffffffff) {
      throw new RangeError(`writeBatch: record count ${count} is not a u32`);
    }
    if (batch.length > MAX_FRAME_PAYLOAD) {
      throw new RangeError(`writeBatch: batch of ${batch.length} bytes exceeds the ${MAX_FRAME_PAYLOAD}-byte frame limit`);
    }
    if (count * RECORD_PREFIX_SIZE > batch.length || (count === 0) !== (batch.length === 0)) {
      throw new RangeError(`writeBatch: ${count} records cannot fill a batch of ${batch.length} bytes`);
    }
    if (count === 0) return;
    const size = FRAME_HEADER_SIZE + batch.length;
    if (this.failure !== undefined || this.queuedBytes + size > this.maxQueuedBytes) {
      this.drop({ count, payload: batch });
      return;
    }
    this.queue.push({ head: encodeFrameHeader(batch, count), payload: batch, count });
    this.queuedBytes += size;
    if (this.draining === undefined) this.draining = this.drain();
  }

  /** Writes everything queued, syncs and closes the file; rejects with the write failure if there was one. */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private drop(frame: { count: number; payload: Buffer }): void {
    this.counts.batchesDropped++;
    this.counts.recordsDropped += frame.count;
    this.counts.bytesDropped += FRAME_HEADER_SIZE + frame.payload.length;
  }

  private async finish(): Promise<void> {
    if (this.draining !== undefined) await this.draining;
    if (this.failure === undefined) {
      try {
        await this.handle.sync();
      } catch (err) {
        this.fail(err);
      }
    }
    try {
      await this.handle.close();
    } catch (err) {
      this.fail(err);
    }
    if (this.failure !== undefined) throw this.failure;
  }

  // Runs until the queue is empty; batches queued meanwhile join the next writev.
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failure === undefined) {
        const frames = this.queue.length <= FRAMES_PER_WRITE ? this.queue : this.queue.slice(0, FRAMES_PER_WRITE);
        this.queue = frames === this.queue ? [] : this.queue.slice(FRAMES_PER_WRITE);
        await this.writeFrames(frames);
      }
      for (const f of this.queue) this.drop(f);
      this.queue = [];
      this.queuedBytes = 0;
    } finally {
      this.draining = undefined;
    }
  }

  // writev may write less than asked (a signal, a full disk): go on from where it stopped, and count
  // a frame as written only once its last byte is in the file.
  private async writeFrames(frames: Frame[]): Promise<void> {
    let rest: Buffer[] = [];
    for (const f of frames) rest.push(f.head, f.payload);
    let done = 0;
    let frameLeft = FRAME_HEADER_SIZE + frames[0]!.payload.length;
    while (done < frames.length) {
      let n: number;
      try {
        ({ bytesWritten: n } = await this.handle.writev(rest));
        if (n === 0) throw new Error('writev() wrote 0 bytes');
      } catch (err) {
        for (const f of frames.slice(done)) this.drop(f);
        this.fail(err);
        return;
      }
      this.written += n;
      for (let k = n; k > 0 && done < frames.length; ) {
        if (k < frameLeft) {
          frameLeft -= k;
          break;
        }
        k -= frameLeft;
        const f = frames[done++]!;
        this.queuedBytes -= FRAME_HEADER_SIZE + f.payload.length;
        this.counts.batchesWritten++;
        this.counts.recordsWritten += f.count;
        if (done < frames.length) frameLeft = FRAME_HEADER_SIZE + frames[done]!.payload.length;
      }
      if (done === frames.length) break;
      let i = 0;
      while (n >= rest[i]!.length) n -= rest[i++]!.length;
      rest = [rest[i]!.subarray(n), ...rest.slice(i + 1)];
    }
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    const code = errnoCode(err);
    this.failure = new RecordWriteError(
      `writing recording ${this.path} failed after ${this.written} bytes: ${describe(err)}`,
      { path: this.path, bytesWritten: this.written, ...(code === undefined ? {} : { code }), cause: err },
    );
    const failure = this.failure;
    const onError = this.onError;
    if (onError !== undefined) queueMicrotask(() => onError(failure));
  }
}
