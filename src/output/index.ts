// The stdout formats (text, hex, jsonl) as CallSinks, and the summary lines for stderr.

import type { CallSink, CaptureContext, ConnectionEvent, TlsCall } from '../events/types.js';
import { BatchWriter } from './batch.js';
import type { ByteTarget, OutputStream } from './batch.js';
import { JsonlFormat } from './jsonl.js';
import { HexFormat, TextFormat } from './text.js';
import type { CallEncoder } from './text.js';
import { FORMATS, FORMAT_NAMES } from './formats.js';
import type { FormatName } from './formats.js';

export { isBrokenPipe } from './batch.js';
export type { OutputStream } from './batch.js';
export { summaryRecord } from './jsonl.js';
export type { ConnectionRecord, ConnectionRecordConn, DataRecord, SummaryRecord } from './jsonl.js';
export { formatBytes, formatSpillNow, formatStatsLine, formatSummary } from './summary.js';
export { escapePayload } from './escape.js';
export { hexdump } from './hexdump.js';
export { previewEnd } from './escape.js';
export { FORMATS, FORMAT_NAMES } from './formats.js';
export type { FormatName } from './formats.js';

/** Options of createFormatSink. */
export interface FormatSinkOptions {
  /** ANSI colour on header lines (text and hex only). */
  color: boolean;
  /** Captured bytes shown per call by text and hex (jsonl always carries every captured byte). */
  maxPreviewBytes?: number;
  /** Called once when the stream fails; `isBrokenPipe(error)` means the reader went away. */
  onClosed?: (error: NodeJS.ErrnoException) => void;
  /** Batched bytes that trigger a write (default 256 KiB). */
  flushBytes?: number;
  /** Longest delay before batched text is written (default 20 ms). */
  flushDelayMs?: number;
}

/** A format sink: a CallSink that batches writes and exposes the stream's backpressure. */
export interface FormatSink extends CallSink {
  /** True while the stream wants the producer to pause; await drained() before writing more. */
  readonly needsDrain: boolean;
  /** Resolves when the stream can take more (at once if it already can, or after a failure). */
  drained(): Promise<void>;
  /** Writes a line of the caller's own (e.g. the jsonl summary) in order with the calls. */
  writeLine(line: string): void;
  /** Writes what `encode` puts into the output (a line of the caller's own, encoded in place). */
  writeEncoded(encode: (target: ByteTarget) => void): void;
  /** The error that ended output (EPIPE, ...), if any; later calls are discarded. */
  readonly error: NodeJS.ErrnoException | undefined;
}

/**
 * A line output on a BatchWriter: backpressure, the caller's own lines, close. The format sinks
 * and the `-f http` output build on it.
 */
export class LineOutput {
  constructor(protected readonly writer: BatchWriter) {}

  /** True while the stream wants the producer to pause; await drained() before writing more. */
  get needsDrain(): boolean {
    return this.writer.needsDrain;
  }

  /** The error that ended output (EPIPE, ...), if any; later lines are discarded. */
  get error(): NodeJS.ErrnoException | undefined {
    return this.writer.error;
  }

  /** Writes one line (a newline is added when missing). */
  writeLine(line: string): void {
    if (this.writer.error !== undefined) return;
    this.writer.writeString(line.endsWith('\n') ? line : `${line}\n`);
    this.writer.commit();
  }

  /** Writes what `encode` puts into the output (a line of the caller's own, encoded in place). */
  writeEncoded(encode: (target: ByteTarget) => void): void {
    if (this.writer.error !== undefined) return;
    encode(this.writer);
    this.writer.commit();
  }

  /** Resolves when the stream can take more (at once if it already can, or after a failure). */
  drained(): Promise<void> {
    return this.writer.drained();
  }

  /** Flushes what is batched; does not end the stream. */
  close(): Promise<void> {
    return this.writer.close();
  }
}

class EncodingSink extends LineOutput implements FormatSink {
  constructor(
    private readonly encoder: CallEncoder,
    writer: BatchWriter,
  ) {
    super(writer);
  }

  write(call: TlsCall): void {
    if (this.writer.error !== undefined) return;
    this.encoder.encode(call, this.writer);
    this.writer.commit();
  }

  connection(event: ConnectionEvent): void {
    if (this.writer.error !== undefined || !this.encoder.encodeConnection) return;
    this.encoder.encodeConnection(event, this.writer);
    this.writer.commit();
  }
}

/** Whether `name` is one of FORMATS. */
export function isFormatName(name: string): name is FormatName {
  return Object.prototype.hasOwnProperty.call(FORMATS, name);
}

/** A sink that writes every call to `out` in `format`; close() flushes but does not end `out`. */
export function createFormatSink(
  format: FormatName,
  out: OutputStream,
  ctx: CaptureContext,
  opts: FormatSinkOptions,
): FormatSink {
  const preview = opts.maxPreviewBytes ?? Number.POSITIVE_INFINITY;
  if (!(preview >= 0)) throw new RangeError(`maxPreviewBytes must be >= 0, got ${opts.maxPreviewBytes}`);
  let encoder: CallEncoder;
  switch (format) {
    case 'text':
      encoder = new TextFormat(ctx, opts.color, preview);
      break;
    case 'hex':
      encoder = new HexFormat(ctx, opts.color, preview);
      break;
    case 'jsonl':
      encoder = new JsonlFormat(ctx);
      break;
    default:
      throw new RangeError(`unknown output format ${String(format)} (one of ${FORMAT_NAMES.join(', ')})`);
  }
  const writer = new BatchWriter(out, {
    onClosed: opts.onClosed,
    flushBytes: opts.flushBytes,
    flushDelayMs: opts.flushDelayMs,
  });
  return new EncodingSink(encoder, writer);
}
