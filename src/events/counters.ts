import { EVENT_LAYOUT } from './layout.js';

const K = EVENT_LAYOUT.constants;
const F = EVENT_LAYOUT.counters.fields;

/** The kernel-side counters (enum tlstap_counter), summed over CPUs. */
export interface KernelCounters {
  droppedEvents: number;
  droppedBytes: number;
  readFaults: number;
  readFaultBytes: number;
  calls: number;
  /** Calls sent without a connection because the kernel's connection map refused the entry. */
  untrackedCalls: number;
  /** Calls of which no byte could be read (a read fault at their first chunk): they never arrive. */
  readFaultCalls: number;
  /** Writes in flight when their thread exited (a process killed inside SSL_write). */
  exitCutWrites: number;
}

/** The counters from their values indexed by enum tlstap_counter. */
export function countersFromValues(values: readonly number[]): KernelCounters {
  return {
    droppedEvents: values[K.CTR_RINGBUF_DROPPED_EVENTS] ?? 0,
    droppedBytes: values[K.CTR_RINGBUF_DROPPED_BYTES] ?? 0,
    readFaults: values[K.CTR_READ_FAULTS] ?? 0,
    readFaultBytes: values[K.CTR_READ_FAULT_BYTES] ?? 0,
    calls: values[K.CTR_CALLS] ?? 0,
    untrackedCalls: values[K.CTR_UNTRACKED_CALLS] ?? 0,
    readFaultCalls: values[K.CTR_READ_FAULT_CALLS] ?? 0,
    exitCutWrites: values[K.CTR_EXIT_CUT_WRITES] ?? 0,
  };
}

/** A struct tlstap_counters_event record, for the end of a --record file. */
export function encodeCountersRecord(counters: KernelCounters, tsNs: bigint): Buffer {
  const rec = Buffer.alloc(EVENT_LAYOUT.counters.size);
  rec.writeBigUInt64LE(tsNs, F.ts_ns.offset);
  rec.writeUInt32LE(K.EVENT_COUNTERS, F.kind.offset);
  const values = [
    [K.CTR_RINGBUF_DROPPED_EVENTS, counters.droppedEvents],
    [K.CTR_RINGBUF_DROPPED_BYTES, counters.droppedBytes],
    [K.CTR_READ_FAULTS, counters.readFaults],
    [K.CTR_READ_FAULT_BYTES, counters.readFaultBytes],
    [K.CTR_CALLS, counters.calls],
    [K.CTR_UNTRACKED_CALLS, counters.untrackedCalls],
    [K.CTR_READ_FAULT_CALLS, counters.readFaultCalls],
    [K.CTR_EXIT_CUT_WRITES, counters.exitCutWrites],
  ] as const;
  for (const [index, value] of values) rec.writeBigUInt64LE(BigInt(value), F.values.offset + 8 * index);
  return rec;
}

/** The counters of a struct tlstap_counters_event at buf[start]. */
export function decodeCountersRecord(buf: Buffer, start: number): KernelCounters {
  const values: number[] = [];
  for (let i = 0; i < K.CTR_COUNT; i++) values.push(Number(buf.readBigUInt64LE(start + F.values.offset + 8 * i)));
  return countersFromValues(values);
}
