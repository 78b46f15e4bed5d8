import { RecordDecoder } from '../events/assemble.js';
import { ConnectionTracker } from '../events/connections.js';
import type { TrackerStats } from '../events/connections.js';
import type { CallSink, CaptureStats, ConnectionEvent, ConnectionInfo, TlsCall } from '../events/types.js';
import type { KernelCounters } from '../events/counters.js';
import { BatchRedactor } from '../redact/index.js';
import type { RedactStats } from '../redact/index.js';

/** Totals counted in user space as calls come out of the tracker. */
export interface PipelineTotals {
  calls: number;
  bytes: number;
  bytesTruncated: number;
  /** Bytes missing from calls that arrived in part. */
  bytesLost: number;
}

/** A consumer of raw batches, before decoding (the --record writer). */
export interface BatchSink {
  writeBatch(batch: Buffer, count: number): void;
  close(): Promise<void>;
}

/** Options of a pipeline. */
export interface PipelineOptions {
  recorder?: BatchSink;
  /** Only calls this accepts reach the sinks (and the totals). */
  keepCall?: (call: TlsCall) => boolean;
  /** Only connections this accepts reach the sinks. */
  keepConnection?: (conn: ConnectionInfo) => boolean;
  /** --redact: credential header values are masked in the batches, before the recorder and every sink. */
  redact?: boolean;
  /**
   * --port/--host: the kernel decides for connections whose addresses it knows at their first
   * call; this decides for the rest (a memory BIO), once their addresses are known.
   */
  keepAddress?: (conn: ConnectionInfo) => boolean;
}

/**
 * Batches in, calls out: raw batches (masked in place first with --redact) go to the recorder, then through the decoder
 * (chunks joined) and the connection tracker (connections, kernel order) to every sink. The
 * same pipeline serves live capture and replay.
 */
export class CallPipeline {
  readonly totals: PipelineTotals = { calls: 0, bytes: 0, bytesTruncated: 0, bytesLost: 0 };
  /** Calls delivered, by probed file (TlsCall.fileIndex). */
  readonly callsByFile: number[] = [];
  private readonly decoder: RecordDecoder;
  private readonly tracker: ConnectionTracker;
  /** The kernel counters a replayed recording ended with. */
  private recordedCounters: KernelCounters | undefined;
  private readonly redactor: BatchRedactor | undefined;

  constructor(
    private readonly sinks: readonly CallSink[],
    private readonly options: PipelineOptions = {},
  ) {
    this.tracker = new ConnectionTracker(
      { call: (call) => this.deliver(call), connection: (event) => this.announce(event) },
      { keep: options.keepConnection, address: options.keepAddress },
    );
    this.redactor = options.redact ? new BatchRedactor() : undefined;
    const tracker = this.tracker;
    this.decoder = new RecordDecoder({
      call: (d) => tracker.call(d),
      conn: (d) => tracker.conn(d),
      counters: (c) => (this.recordedCounters = c),
    });
  }

  /** Feeds one batch (bound, so it can be handed to the native poller as is). */
  readonly onBatch = (batch: Buffer, count: number): void => {
    this.redactor?.redactBatch(batch, count);
    this.options.recorder?.writeBatch(batch, count);
    this.decoder.pushBatch(batch, count);
    this.decoder.endBatch();
    this.tracker.endBatch();
  };

  private deliver(call: TlsCall): void {
    if (this.options.keepCall && !this.options.keepCall(call)) return;
    const t = this.totals;
    t.calls++;
    t.bytes += call.data.length;
    t.bytesTruncated += call.truncated;
    t.bytesLost += call.lost;
    this.callsByFile[call.fileIndex] = (this.callsByFile[call.fileIndex] ?? 0) + 1;
    for (const sink of this.sinks) sink.write(call);
  }

  private announce(event: ConnectionEvent): void {
    for (const sink of this.sinks) sink.connection?.(event);
  }

  /** Resolves once every sink that is behind has caught up, or undefined when none is behind. */
  backlog(): Promise<void> | undefined {
    const behind = this.sinks.filter((s) => s.needsDrain === true && s.drained);
    return behind.length === 0 ? undefined : Promise.all(behind.map((s) => s.drained!())).then(() => undefined);
  }

  /** What --redact masked, when it is on. */
  get redaction(): Readonly<RedactStats> | undefined {
    return this.redactor?.stats;
  }

  /** Records the decoder could not use (unknown kind, malformed). */
  get unusableRecords(): number {
    return this.decoder.stats.unknownRecords + this.decoder.stats.malformedRecords;
  }

  /** What the connection tracker counted. */
  get connectionStats(): Readonly<TrackerStats> {
    return this.tracker.stats;
  }

  /** The input has ended: calls still waiting for chunks or for earlier calls go out, connections close. */
  flush(): void {
    this.decoder.flush();
    this.tracker.flush();
  }

  /** Flushes and closes every sink and the recorder. */
  async close(): Promise<void> {
    const closing = this.sinks.map((sink) => sink.close());
    if (this.options.recorder) closing.push(this.options.recorder.close());
    await Promise.all(closing);
  }

  /** The run's totals; the kernel counters when live or recorded, else what the calls themselves tell. */
  stats(live?: KernelCounters): CaptureStats {
    const kernel = live ?? this.recordedCounters;
    const t = this.totals;
    return {
      calls: t.calls,
      bytes: t.bytes,
      eventsDropped: kernel?.droppedEvents ?? 0,
      bytesDropped: kernel ? kernel.droppedBytes : t.bytesLost,
      bytesTruncated: t.bytesTruncated,
      readFaults: kernel?.readFaults ?? 0,
      readFaultBytes: kernel?.readFaultBytes ?? 0,
      connections: this.tracker.stats.connections,
      // A call whose first chunk could not be read leaves a gap in its connection too; it is a read fault, not a drop.
      missingCalls: Math.max(0, this.tracker.stats.missingCalls - (kernel?.readFaultCalls ?? 0)),
      untrackedCalls: kernel?.untrackedCalls ?? 0,
      exitCutWrites: kernel?.exitCutWrites ?? 0,
      splitConnections: this.tracker.stats.splitConnections,
      fdConflicts: this.tracker.stats.fdConflicts,
      unusableRecords: this.unusableRecords,
      unaddressedExcluded: this.tracker.stats.unaddressedExcluded,
      unaddressedExcludedNames: this.tracker.stats.unaddressedExcludedNames,
    };
  }
}
