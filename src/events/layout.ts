/**
 * The TypeScript mirror of struct tlstap_data_event (bpf/tlstap.h). test/layout.test.ts checks
 * it against the sizeof/offsetof values the native addon was compiled with.
 */
export const EVENT_LAYOUT = {
  headerSize: 80,
  fields: {
    ts_ns: { offset: 0, size: 8 },
    ssl: { offset: 8, size: 8 },
    cookie: { offset: 16, size: 8 },
    kind: { offset: 24, size: 4 },
    pid: { offset: 28, size: 4 },
    tid: { offset: 32, size: 4 },
    uid: { offset: 36, size: 4 },
    total_len: { offset: 40, size: 4 },
    truncated: { offset: 44, size: 4 },
    chunk_offset: { offset: 48, size: 4 },
    chunk_len: { offset: 52, size: 4 },
    func: { offset: 56, size: 1 },
    dir: { offset: 57, size: 1 },
    comm: { offset: 64, size: 16 },
    data: { offset: 80, size: 0 },
  },
  constants: {
    COMM_LEN: 16,
    CHUNK_SIZE: 16384,
    MAX_CHUNKS: 256,
    MAX_CALL_BYTES: 16384 * 256,
    DEFAULT_CALL_BYTES: 1024 * 1024,
    MAX_INFLIGHT: 16384,
    FUNC_COUNT: 4,
    EVENT_DATA: 1,
    DIR_READ: 0,
    DIR_WRITE: 1,
    CTR_RINGBUF_DROPPED_EVENTS: 0,
    CTR_RINGBUF_DROPPED_BYTES: 1,
    CTR_READ_FAULTS: 2,
    CTR_READ_FAULT_BYTES: 3,
    CTR_CALLS: 4,
    CTR_COUNT: 5,
  },
} as const;

/** The shape of an event layout description (the mirror above, the addon's report, a recording's header). */
export interface EventLayout {
  headerSize: number;
  fields: Record<string, { offset: number; size: number }>;
  constants: Record<string, number>;
}

/** The attach cookie: low byte the function, the rest the probed file's index (TLSTAP_COOKIE). */
export function makeCookie(fileIndex: number, func: number): bigint {
  return (BigInt(fileIndex) << 8n) | BigInt(func);
}
