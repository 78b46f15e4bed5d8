// The pcapng output (`-w FILE`, `-w -`): calls become synthesized TCP/IP packets (tcp.ts) in
// Enhanced Packet Blocks (blocks.ts), written incrementally. Each block is encoded into one
// contiguous stretch of the batch, and batches are handed to the stream as slices that start and
// end on block boundaries, so a file cut short (kill -9, disk full) ends with whole blocks.

import type { Writable } from 'node:stream';
import type { CallSink, CaptureContext, ConnectionEvent, TlsCall } from '../events/types.js';
import { BatchWriter, describeWriteError, releasesChunksOnCallback } from '../output/batch.js';
import type { OutputStream } from '../output/batch.js';
import { createPrivateWriteStream, OutputFileError } from '../util/private-file.js';
import { hostInfo, tlstapVersion } from '../version.js';
import {
  EPB_INBOUND,
  EPB_OUTBOUND,
  EPB_UNICAST,
  LINKTYPE_RAW,
  encodeInterfaceDescription,
  encodeSectionHeader,
  writeEnhancedPacket,
} from './blocks.js';
import type { SectionHeader } from './blocks.js';
import { PayloadSummer } from './checksum.js';
import { MAX_IP_PACKET, TcpSynthesizer, packetLength, writePacket } from './tcp.js';
import type { DecodeAs, Segment } from './tcp.js';

/** Options of createPcapngSink. */
export interface PcapngSinkOptions {
  /** Called once when output fails (EPIPE, ENOSPC ...) with a one-line message saying how much was written. */
  onClosed?: (error: NodeJS.ErrnoException, message: string) => void;
  /** Batched bytes that trigger a write (default 256 KiB). */
  flushBytes?: number;
  /** Longest time a block waits before it is written (default 20 ms), so live readers stay live. */
  flushDelayMs?: number;
  /** Overrides of the Section Header's texts (default: tlstap's version, this kernel and arch). */
  header?: Partial<SectionHeader>;
}

/** The pcapng writer: a CallSink that also takes connection events. */
export interface PcapngSink extends CallSink {
  /** Opens (on the first call) and closes (FIN/ACK) the synthesized TCP stream of a connection. */
  connection(event: ConnectionEvent): void;
  /** Where the file goes: a path, or '-' for stdout. */
  readonly target: string;
  /** Bytes the stream has confirmed written. */
  readonly bytesWritten: number;
  /** Packets (Enhanced Packet Blocks) the stream has confirmed written. */
  readonly packetsWritten: number;
  /** True while the stream wants the producer to pause; await drained() before writing more. */
  readonly needsDrain: boolean;
  /** Resolves when the stream can take more (at once if it can, or after a failure). */
  drained(): Promise<void>;
  /** The error that ended output, if any; later calls are discarded. */
  readonly error: NodeJS.ErrnoException | undefined;
  /** The one-line report of that error with the amount written, if output failed. */
  readonly failureMessage: string | undefined;
  /** Server ports whose streams carry HTTP or HTTP/2, for decode-as options. */
  readonly decodeAs: DecodeAs[];
}

/** Ports Wireshark 4.0 dissects as HTTP without being told (`tshark -G decodes`). */
const WIRESHARK_HTTP_PORTS = new Set([80, 631, 1900, 2710, 2869, 3128, 3132, 3689, 5985, 8080, 8088, 11371]);

/** Quotes a word for a POSIX shell when it needs it. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that opens a tlstap pcapng in Wireshark (or tshark), with a `-d tcp.port==P,http2`
 * or `,http` decode-as option for each HTTP server port Wireshark would not dissect as such by
 * itself (443 is TLS to Wireshark; HTTP/2 has no port of its own). Path '-' gives the live form.
 */
export function wiresharkCommand(path: string, ports: readonly DecodeAs[], tool: 'wireshark' | 'tshark' = 'wireshark'): string {
  const words: string[] = [tool];
  for (const { port, protocol } of [...ports].sort((a, b) => a.port - b.port)) {
    if (protocol === 'http' && WIRESHARK_HTTP_PORTS.has(port)) continue;
    words.push('-d', `tcp.port==${port},${protocol}`);
  }
  if (path === '-') words.push('-k', '-i', '-');
  else words.push('-r', shellQuote(path));
  return words.join(' ');
}

/** Counts the bytes a stream confirms written, without changing how it is used. */
class CountingStream implements OutputStream {
  written = 0;
  constructor(
    private readonly out: OutputStream,
    private readonly onWritten: (total: number) => void,
  ) {}
  get destroyed(): boolean | undefined {
    return this.out.destroyed;
  }
  get writableEnded(): boolean | undefined {
    return this.out.writableEnded;
  }
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean {
    return this.out.write(chunk, (error) => {
      if (!error) {
        this.written += chunk.length;
        this.onWritten(this.written);
      }
      callback?.(error);
    });
  }
  on(event: string, listener: (...args: any[]) => void): unknown {
    return this.out.on(event, listener);
  }
  once(event: string, listener: (...args: any[]) => void): unknown {
    return this.out.once(event, listener);
  }
  removeListener(event: string, listener: (...args: any[]) => void): unknown {
    return this.out.removeListener(event, listener);
  }
}


class Sink implements PcapngSink {
  private readonly writer: BatchWriter;
  private readonly counter: CountingStream;
  private readonly synth: TcpSynthesizer;
  private readonly summer = new PayloadSummer();
  /** Encoded bytes and packets so far. */
  private encodedBytes = 0;
  private encodedPackets = 0;
  /** [bytes, packets] at each commit, until the stream confirms those bytes. */
  private marks: number[] = [];
  private markHead = 0;
  private confirmedPackets = 0;
  private failure: string | undefined;
  private closed = false;
  private readonly emitSegment = (seg: Segment): void => this.writeSegment(seg);

  constructor(
    readonly target: string,
    out: OutputStream,
    ctx: CaptureContext,
    opts: PcapngSinkOptions,
    private readonly owned: Writable | undefined,
  ) {
    this.counter = new CountingStream(out, (total) => this.confirm(total));
    this.writer = new BatchWriter(this.counter, {
      flushBytes: opts.flushBytes,
      flushDelayMs: opts.flushDelayMs,
      // The counting wrapper hides what the stream is.
      reuseChunks: releasesChunksOnCallback(out),
      onClosed: (error) => {
        this.failure = `pcapng output to ${target === '-' ? 'stdout' : target} stopped: ${describeWriteError(error)} after ${this.counter.written} bytes (${this.confirmedPackets} packets)`;
        opts.onClosed?.(error, this.failure);
      },
    });
    this.synth = new TcpSynthesizer(this.emitSegment, (ns) => ctx.wallClockNs(ns));
    const host = hostInfo();
    const shb = encodeSectionHeader({
      userAppl: opts.header?.userAppl ?? `tlstap ${tlstapVersion()}`,
      os: opts.header?.os ?? `Linux ${host.kernel}`,
      hardware: opts.header?.hardware ?? host.arch,
      comment: opts.header?.comment,
    });
    const idb = encodeInterfaceDescription({
      linkType: LINKTYPE_RAW,
      snapLen: MAX_IP_PACKET,
      name: 'tlstap',
      description: 'TLS plaintext from SSL_read/SSL_write as synthesized TCP/IP',
      tsresol: 9,
    });
    this.put(shb);
    this.put(idb);
    this.commit();
  }

  get bytesWritten(): number {
    return this.counter.written;
  }
  get packetsWritten(): number {
    return this.confirmedPackets;
  }
  get needsDrain(): boolean {
    return this.writer.needsDrain;
  }
  get error(): NodeJS.ErrnoException | undefined {
    return this.writer.error;
  }
  get failureMessage(): string | undefined {
    return this.failure;
  }
  get decodeAs(): DecodeAs[] {
    return this.synth.decodeAs;
  }

  drained(): Promise<void> {
    return this.writer.drained();
  }

  write(call: TlsCall): void {
    if (this.closed || this.writer.error !== undefined) return;
    this.synth.call(call);
    this.commit();
  }

  connection(event: ConnectionEvent): void {
    if (this.closed || this.writer.error !== undefined) return;
    this.synth.connection(event);
    this.commit();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writer.error === undefined) {
      this.synth.finish();
      this.commit();
    }
    await this.writer.close();
    const file = this.owned;
    if (file !== undefined) {
      if (this.writer.error !== undefined) {
        file.destroy();
        return;
      }
      // Resolve once the fd is closed, so the file is complete when close() returns.
      await new Promise<void>((resolve) => {
        file.once('error', () => resolve());
        file.once('close', () => resolve());
        file.end();
      });
    }
  }

  private put(block: Buffer): void {
    this.writer.reserve(block.length);
    block.copy(this.writer.buf, this.writer.pos);
    this.writer.pos += block.length;
    this.encodedBytes += block.length;
  }

  private writeSegment(seg: Segment): void {
    const len = packetLength(seg);
    this.encodedBytes += writeEnhancedPacket(
      this.writer,
      {
        interfaceId: 0,
        timestamp: seg.tsNs,
        flags: (seg.outbound ? EPB_OUTBOUND : EPB_INBOUND) | EPB_UNICAST,
        comment: seg.comment,
      },
      len,
      (buf, off) => writePacket(buf, off, seg, this.summer.sum(seg.payload)),
    );
    this.encodedPackets++;
  }

  private commit(): void {
    const n = this.marks.length;
    if (n - this.markHead === 0 || this.marks[n - 2] !== this.encodedBytes) this.marks.push(this.encodedBytes, this.encodedPackets);
    this.writer.commit();
  }

  /** The stream confirmed `total` bytes: packets whose blocks all lie before that are written. */
  private confirm(total: number): void {
    const m = this.marks;
    while (this.markHead < m.length && m[this.markHead]! <= total) {
      this.confirmedPackets = m[this.markHead + 1]!;
      this.markHead += 2;
    }
    if (this.markHead > 4096 && this.markHead * 2 > m.length) {
      this.marks = m.slice(this.markHead);
      this.markHead = 0;
    }
  }
}

/**
 * A pcapng writer on an already open stream (stdout, a pipe, a socket). close() flushes but does
 * not end the stream. Writes the Section Header and Interface Description at once.
 */
export function createPcapngStreamSink(out: OutputStream, ctx: CaptureContext, opts: PcapngSinkOptions = {}, target = '-'): PcapngSink {
  return new Sink(target, out, ctx, opts, undefined);
}

/**
 * The `-w` output: `target` is a path, created with mode 0600 (an OutputFileError, before any
 * capture starts, when it cannot be), or '-' for stdout (refused when stdout is a terminal).
 */
export async function createPcapngSink(target: string, ctx: CaptureContext, opts: PcapngSinkOptions = {}): Promise<PcapngSink> {
  if (target === '-') {
    if (process.stdout.isTTY === true) {
      throw new OutputFileError('-', 'stdout is a terminal; pipe it (tlstap -w - | wireshark -k -i -) or give a file name');
    }
    return new Sink('-', process.stdout, ctx, opts, undefined);
  }
  const stream = createPrivateWriteStream(target);
  return new Sink(target, stream, ctx, opts, stream);
}
