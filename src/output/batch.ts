// Batching output bytes into few large writes, with backpressure and a single report when the
// stream dies (EPIPE when the reader of `tlstap | head` goes away).

import { WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import { FileWriteStream } from '../util/private-file.js';

/** The part of a Writable that output sinks use; process.stdout and fs/net streams fit. */
export interface OutputStream {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  once(event: string, listener: (...args: any[]) => void): unknown;
  removeListener(event: string, listener: (...args: any[]) => void): unknown;
  readonly destroyed?: boolean;
  readonly writableEnded?: boolean;
}

/** Where encoders put bytes: `buf[pos..]` is free; reserve(n) makes room for n bytes there. */
export interface ByteTarget {
  buf: Buffer;
  pos: number;
  /** Guarantees `buf.length - pos >= n`; may replace `buf`, so re-read it afterwards. */
  reserve(n: number): void;
  /** Appends a string as UTF-8. */
  writeString(text: string): void;
  /**
   * Hands the bytes written so far to the output now if they fill a write, so a long value inside
   * one unit (a body in a record) is not held whole; optional (a target in memory holds everything).
   */
  writeOutIfFull?(): void;
}

/** A ByteTarget that grows one buffer, for encoding into a string or Buffer off the hot path. */
export class GrowableBytes implements ByteTarget {
  buf: Buffer = Buffer.allocUnsafe(256);
  pos = 0;

  /** Doubles the buffer until n more bytes fit. */
  reserve(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    let size = this.buf.length * 2;
    while (size - this.pos < n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Appends a string as UTF-8. */
  writeString(text: string): void {
    this.reserve(text.length * 3);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** The bytes written so far, decoded as UTF-8. */
  toString(): string {
    return this.buf.toString('utf8', 0, this.pos);
  }
}

/** Settings of a BatchWriter. */
export interface BatchOptions {
  /** Batched bytes that trigger a write (default 256 KiB). */
  flushBytes?: number;
  /** Longest time bytes wait in the batch (default 20 ms), so a live capture stays live. */
  flushDelayMs?: number;
  /** Called once when the stream fails or closes under us; EPIPE means the reader went away. */
  onClosed?: (error: NodeJS.ErrnoException) => void;
  /**
   * Whether a chunk may be written over once the stream has called back for every slice of it
   * (default: releasesChunksOnCallback(stream)).
   */
  reuseChunks?: boolean;
}

/**
 * Whether `out` is done with a chunk when its write callback runs: files, sockets, pipes and
 * stdio have handed the bytes to their fd by then. An in-memory stream may not have (a
 * PassThrough still holds the chunk in its read queue), so its chunks are never reused.
 */
export function releasesChunksOnCallback(out: OutputStream): boolean {
  return out instanceof WriteStream || out instanceof FileWriteStream || out instanceof Socket || out === process.stdout || out === process.stderr;
}

/** Whether an error says the reading end of the pipe is gone (a normal way for output to end). */
export function isBrokenPipe(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'EPIPE';
}

/** A write error in words: `the reader went away (EPIPE)`, `no space left on device (ENOSPC)`. */
export function describeWriteError(error: NodeJS.ErrnoException): string {
  if (isBrokenPipe(error)) return 'the reader went away (EPIPE)';
  if (error.code === 'ENOSPC') return 'no space left on device (ENOSPC)';
  return error.code !== undefined ? `${error.message} (${error.code})` : error.message;
}

/** Bytes per chunk buffer; a batch is written out long before a chunk fills up. */
const CHUNK_SIZE = 256 * 1024;
/**
 * Free chunks kept for reuse (8 MiB): a whole batch of records (4 MiB from the poller, more as
 * jsonl) is encoded before the stream gets a chance to call back, so that many are in use at once.
 */
const POOL_SIZE = 32;

/** A chunk buffer, and how many of its slices are queued for the stream or not yet called back. */
class Chunk {
  users = 0;
  /** The write callback of this chunk's slices (made once: chunks are reused). */
  readonly onWritten: (error?: Error | null) => void;

  constructor(
    readonly buf: Buffer,
    onWritten: (chunk: Chunk, error?: Error | null) => void,
  ) {
    this.onWritten = (error) => onWritten(this, error);
  }
}

/** A batched stretch of an earlier chunk, waiting to be handed to the stream. */
interface QueuedSlice {
  bytes: Buffer;
  chunk: Chunk;
}

/**
 * Accumulates bytes in a chunk buffer and writes them in large slices, pausing while the stream
 * asks for a drain. A slice handed to the stream is not written to again until the stream has
 * called back for it: later bytes go after it, and a full chunk is replaced by a free one. Chunks
 * the stream is done with go back to a small pool, so steady output allocates nothing.
 */
export class BatchWriter implements ByteTarget {
  /** The chunk encoders write into. */
  private chunk: Chunk;
  /** Its buffer; encoders write at `pos`. */
  buf: Buffer;
  /** End of the batched bytes in `buf`. */
  pos = 0;
  /** Start of the batched bytes in `buf` (everything before went to the stream). */
  private start = 0;
  /** Free chunks of CHUNK_SIZE bytes, when chunks are reused. */
  private readonly pool: Chunk[] = [];
  private readonly reuseChunks: boolean;
  /** Batched bytes of earlier chunks, not yet handed to the stream. */
  private queued: QueuedSlice[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  private drainPromise: Promise<void> | undefined;
  private resolveDrain: (() => void) | undefined;
  /** Writes handed to the stream whose callback has not run yet. */
  private inflight = 0;
  private resolveIdle: (() => void) | undefined;
  private failure: NodeJS.ErrnoException | undefined;
  private closing = false;
  private readonly flushBytes: number;
  private readonly flushDelayMs: number;
  private readonly onClosed: ((error: NodeJS.ErrnoException) => void) | undefined;

  constructor(
    private readonly out: OutputStream,
    options: BatchOptions = {},
  ) {
    this.flushBytes = Math.min(options.flushBytes ?? CHUNK_SIZE, CHUNK_SIZE);
    this.flushDelayMs = options.flushDelayMs ?? 20;
    this.onClosed = options.onClosed;
    this.reuseChunks = options.reuseChunks ?? releasesChunksOnCallback(out);
    // Bound once: the hot path hands these to the stream without creating closures.
    this.onTimer = this.onTimer.bind(this);
    this.onDrain = this.onDrain.bind(this);
    this.onChunkWritten = this.onChunkWritten.bind(this);
    this.chunk = this.takeChunk(CHUNK_SIZE);
    this.buf = this.chunk.buf;
    this.onError = this.onError.bind(this);
    this.onStreamClose = this.onStreamClose.bind(this);
    out.on('error', this.onError);
    out.on('close', this.onStreamClose);
  }

  /** True while the stream is over its high-water mark: the producer should pause until drained(). */
  get needsDrain(): boolean {
    return this.waitingDrain && this.failure === undefined;
  }

  /** The error that ended output (EPIPE, ...), if any; later bytes are discarded. */
  get error(): NodeJS.ErrnoException | undefined {
    return this.failure;
  }

  /** Guarantees room for n more bytes at `pos`, moving to a new chunk when this one is full. */
  reserve(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    // The batched bytes of the full chunk wait in the queue; nothing is copied.
    if (this.pos > this.start) {
      this.chunk.users++;
      this.queued.push({ bytes: this.buf.subarray(this.start, this.pos), chunk: this.chunk });
      this.queuedBytes += this.pos - this.start;
    }
    this.switchChunk(n);
  }

  /** Leaves the current chunk (to the pool, if nothing of it is in use) for one with room for n bytes. */
  private switchChunk(n: number): void {
    const old = this.chunk;
    this.chunk = this.takeChunk(n);
    this.buf = this.chunk.buf;
    this.pos = 0;
    this.start = 0;
    this.recycle(old);
  }

  /** A free chunk from the pool, or a new one, of at least n bytes. */
  private takeChunk(n: number): Chunk {
    if (n <= CHUNK_SIZE && this.pool.length > 0) return this.pool.pop()!;
    return new Chunk(Buffer.allocUnsafeSlow(Math.max(CHUNK_SIZE, n)), this.onChunkWritten);
  }

  /** Puts a chunk nobody uses any more back in the pool (not the current one, not an oversized one). */
  private recycle(chunk: Chunk): void {
    if (!this.reuseChunks || chunk === this.chunk || chunk.users > 0) return;
    if (chunk.buf.length === CHUNK_SIZE && this.pool.length < POOL_SIZE) this.pool.push(chunk);
  }

  /** Appends a string as UTF-8. */
  writeString(text: string): void {
    // Three bytes per UTF-16 unit is the most UTF-8 can need.
    this.reserve(text.length * 3);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** Ends an encoded unit (a call, a line): writes now when the batch is large, else soon. */
  commit(): void {
    if (this.failure !== undefined) {
      this.discard();
      return;
    }
    const batched = this.queuedBytes + this.pos - this.start;
    if (batched >= this.flushBytes) this.flush();
    else if (this.timer === undefined && !this.waitingDrain && batched > 0) {
      this.timer = setTimeout(this.onTimer, this.flushDelayMs);
    }
  }

  /** Hands the batch to the stream now, unless the stream is waiting for a drain. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.waitingDrain || this.failure !== undefined || !this.hasBatched()) return;
    if (this.out.destroyed === true || this.out.writableEnded === true) {
      this.fail(streamGone());
      return;
    }
    if (this.out instanceof FileWriteStream && this.out.canWriteNow) {
      this.writeNow(this.out);
      return;
    }
    let ok = true;
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    for (const slice of queued) {
      this.inflight++;
      ok = this.out.write(slice.bytes, slice.chunk.onWritten);
    }
    if (this.pos > this.start) {
      const chunk = this.chunk;
      const bytes = this.buf.subarray(this.start, this.pos);
      chunk.users++;
      this.start = this.pos;
      // Little room left: start the next batch in another chunk rather than a sliver of this one.
      if (this.buf.length - this.pos < this.flushBytes) this.switchChunk(CHUNK_SIZE);
      this.inflight++;
      ok = this.out.write(bytes, chunk.onWritten);
    }
    if (!ok && this.failure === undefined) {
      this.waitingDrain = true;
      this.out.once('drain', this.onDrain);
    }
  }

  /**
   * Writes the batch to a file at once, on this thread: its chunks are free again before this
   * returns, so the batch is written from the same few chunks however much is encoded in one go.
   */
  private writeNow(file: FileWriteStream): void {
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    try {
      for (const slice of queued) file.writeNow(slice.bytes);
      file.writeNow(this.buf.subarray(this.start, this.pos));
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    } finally {
      for (const slice of queued) {
        slice.chunk.users--;
        this.recycle(slice.chunk);
      }
      // Nothing of the current chunk is in use any more: the next batch starts at its beginning.
      if (this.chunk.users === 0) this.pos = 0;
      this.start = this.pos;
    }
  }

  /** Hands the batch to the stream now if it fills a write (see ByteTarget.writeOutIfFull). */
  writeOutIfFull(): void {
    if (this.failure === undefined && this.queuedBytes + this.pos - this.start >= this.flushBytes) this.flush();
  }

  private hasBatched(): boolean {
    return this.queuedBytes > 0 || this.pos > this.start;
  }

  /** Forgets every batched byte (after a failure nobody will read them). */
  private discard(): void {
    const queued = this.queued;
    this.queued = [];
    this.queuedBytes = 0;
    this.pos = this.start;
    for (const slice of queued) {
      slice.chunk.users--;
      this.recycle(slice.chunk);
    }
  }

  /** Resolves when the stream can take more (at once when it can, or when output has failed). */
  drained(): Promise<void> {
    if (!this.needsDrain) return Promise.resolve();
    this.drainPromise ??= new Promise<void>((resolve) => {
      this.resolveDrain = resolve;
    });
    return this.drainPromise;
  }

  /** Writes everything still batched; resolves when the stream has taken every byte, or failed. */
  async close(): Promise<void> {
    this.closing = true;
    this.flush();
    while (this.failure === undefined && (this.waitingDrain || this.hasBatched())) {
      await this.drained();
      this.flush();
    }
    if (this.failure === undefined && this.inflight > 0) {
      await new Promise<void>((resolve) => {
        this.resolveIdle = resolve;
      });
    }
    // A failed stream may still emit 'error' (after our write callback saw it): keep swallowing it.
    if (this.failure === undefined) {
      this.out.removeListener('error', this.onError);
      this.out.removeListener('close', this.onStreamClose);
    }
  }

  private onTimer(): void {
    this.timer = undefined;
    this.flush();
  }

  private onDrain(): void {
    this.waitingDrain = false;
    // Bytes batched during the wait go first; only a stream still below its mark lets the
    // producer go on.
    this.flush();
    if (!this.waitingDrain) this.settleDrain();
  }

  /** The stream called back for a slice of `chunk`: the chunk may be free now. */
  private onChunkWritten(chunk: Chunk, error?: Error | null): void {
    chunk.users--;
    this.recycle(chunk);
    this.onWritten(error);
  }

  private onWritten(error?: Error | null): void {
    this.inflight--;
    if (error) this.fail(error);
    if (this.inflight === 0 && this.resolveIdle !== undefined) {
      const resolve = this.resolveIdle;
      this.resolveIdle = undefined;
      resolve();
    }
  }

  private onError(error: Error): void {
    this.fail(error);
  }

  private onStreamClose(): void {
    // Closed before close() ran, or with bytes still owed to it: those bytes are lost.
    if (!this.closing || this.hasBatched() || this.inflight > 0) this.fail(streamGone());
  }

  private fail(error: NodeJS.ErrnoException): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.discard();
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.settleDrain();
    if (this.resolveIdle !== undefined) {
      const resolve = this.resolveIdle;
      this.resolveIdle = undefined;
      resolve();
    }
    this.onClosed?.(error);
  }

  private settleDrain(): void {
    const resolve = this.resolveDrain;
    this.drainPromise = undefined;
    this.resolveDrain = undefined;
    resolve?.();
  }
}

function streamGone(): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error('the output stream was closed');
  error.code = 'ERR_STREAM_DESTROYED';
  return error;
}
