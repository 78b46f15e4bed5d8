import { CallAssembler } from '../events/assemble.js';
import type { CallSink, CaptureStats, TlsCall } from '../events/types.js';
import type { KernelCounters } from './session.js';

/** Totals counted in user space as calls come out of the assembler. */
export interface PipelineTotals {
  calls: number;
  bytes: number;
  bytesTruncated: number;
  /** Bytes missing from calls that arrived in part. */
  bytesLost: number;
}

/** A consumer of raw batches, before assembly (the --record writer). */
export interface BatchSink {
  writeBatch(batch: Buffer, count: number): void;
  close(): Promise<void>;
}

/**
 * Batches in, calls out: raw batches go to the recorder as they are, then through the
 * assembler to every call sink. The same pipeline serves live capture and replay.
 */
export class CallPipeline {
  readonly totals: PipelineTotals = { calls: 0, bytes: 0, bytesTruncated: 0, bytesLost: 0 };
  private readonly assembler: CallAssembler;

  constructor(
    private readonly sinks: readonly CallSink[],
    private readonly recorder?: BatchSink,
    private readonly keep?: (call: TlsCall) => boolean,
  ) {
    this.assembler = new CallAssembler((call) => this.deliver(call));
  }

  /** Feeds one batch (bound, so it can be handed to the native poller as is). */
  readonly onBatch = (batch: Buffer, count: number): void => {
    this.recorder?.writeBatch(batch, count);
    this.assembler.pushBatch(batch, count);
  };

  private deliver(call: TlsCall): void {
    if (this.keep && !this.keep(call)) return;
    const t = this.totals;
    t.calls++;
    t.bytes += call.data.length;
    t.bytesTruncated += call.truncated;
    t.bytesLost += call.lost;
    for (const sink of this.sinks) sink.write(call);
  }

  /** Records the assembler could not use (unknown kind, malformed). */
  get unusableRecords(): number {
    return this.assembler.stats.unknownRecords + this.assembler.stats.malformedRecords;
  }

  /** Emits the calls still waiting for chunks (the input has ended). */
  flush(): void {
    this.assembler.flush();
  }

  /** Flushes and closes every sink and the recorder. */
  async close(): Promise<void> {
    this.assembler.flush();
    const closing = this.sinks.map((sink) => sink.close());
    if (this.recorder) closing.push(this.recorder.close());
    await Promise.all(closing);
  }

  /** The run's totals; kernel counters when live, else what the calls themselves tell. */
  stats(kernel?: KernelCounters): CaptureStats {
    const t = this.totals;
    return {
      calls: t.calls,
      bytes: t.bytes,
      eventsDropped: kernel?.droppedEvents ?? 0,
      bytesDropped: kernel ? kernel.droppedBytes : t.bytesLost,
      bytesTruncated: t.bytesTruncated,
      readFaults: kernel?.readFaults ?? 0,
      readFaultBytes: kernel?.readFaultBytes ?? 0,
    };
  }
}
