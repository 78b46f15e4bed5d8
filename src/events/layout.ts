import { isDeepStrictEqual } from 'node:util';

/**
 * The TypeScript mirror of the records in bpf/tlstap.h. test/layout.test.ts checks it
 * against the sizeof/offsetof values compiled into the native addon and against the
 * structs in the BPF object's BTF. Fields of the common header are listed at their place.
 */
const HEADER_FIELDS = {
  ts_ns: { offset: 0, size: 8 },
  ssl: { offset: 8, size: 8 },
  cookie: { offset: 16, size: 8 },
  conn_id: { offset: 24, size: 8 },
  kind: { offset: 32, size: 4 },
  pid: { offset: 36, size: 4 },
  tid: { offset: 40, size: 4 },
  uid: { offset: 44, size: 4 },
  comm: { offset: 48, size: 16 },
} as const;

/** Record layouts and the header's constants. */
export const EVENT_LAYOUT = {
  data: {
    size: 96,
    fields: {
      ...HEADER_FIELDS,
      total_len: { offset: 64, size: 4 },
      truncated: { offset: 68, size: 4 },
      chunk_offset: { offset: 72, size: 4 },
      chunk_len: { offset: 76, size: 4 },
      seq: { offset: 80, size: 4 },
      fd: { offset: 84, size: 4 },
      func: { offset: 88, size: 1 },
      dir: { offset: 89, size: 1 },
      flags: { offset: 90, size: 1 },
      data: { offset: 96, size: 0 },
    },
  },
  conn: {
    size: 112,
    fields: {
      ...HEADER_FIELDS,
      fd: { offset: 64, size: 4 },
      family: { offset: 68, size: 2 },
      lport: { offset: 70, size: 2 },
      rport: { offset: 72, size: 2 },
      reason: { offset: 74, size: 1 },
      seq: { offset: 76, size: 4 },
      laddr: { offset: 80, size: 16 },
      raddr: { offset: 96, size: 16 },
    },
  },
  counters: {
    size: 128,
    fields: {
      ...HEADER_FIELDS,
      values: { offset: 64, size: 64 },
    },
  },
  constants: {
    COMM_LEN: 16,
    CHUNK_SIZE: 16384,
    MAX_CHUNKS: 256,
    MAX_CALL_BYTES: 16384 * 256,
    DEFAULT_CALL_BYTES: 1024 * 1024,
    MAX_INFLIGHT: 16384,
    MAX_CONNS: 65536,
    FUNC_COUNT: 21,
    FILE_AMBIGUOUS: 0xffffff,
    PAGE_OFFSET_MASK: 0xfff,
    FUNC_DATA_COUNT: 10,
    FUNC_LIBRARY_COUNT: 19,
    EVENT_DATA: 1,
    EVENT_CONN_OPEN: 2,
    EVENT_CONN_FD: 3,
    EVENT_CONN_CLOSE: 4,
    EVENT_PROCESS_EXIT: 5,
    EVENT_COUNTERS: 6,
    DIR_READ: 0,
    DIR_WRITE: 1,
    FLAG_FD_CONFLICT: 1,
    REASON_NONE: 0,
    REASON_NO_FD: 1,
    REASON_NOT_SOCKET: 2,
    REASON_NOT_INET: 3,
    REASON_FD_UNREADABLE: 4,
    REASON_SHUTDOWN: 5,
    REASON_FREE: 6,
    REASON_FD_CLOSED: 7,
    REASON_NO_BTF: 8,
    CTR_RINGBUF_DROPPED_EVENTS: 0,
    CTR_RINGBUF_DROPPED_BYTES: 1,
    CTR_READ_FAULTS: 2,
    CTR_READ_FAULT_BYTES: 3,
    CTR_CALLS: 4,
    CTR_UNTRACKED_CALLS: 5,
    CTR_READ_FAULT_CALLS: 6,
    CTR_EXIT_CUT_WRITES: 7,
    CTR_COUNT: 8,
  },
} as const;

/** The shape of an event layout description (the mirror above, the addon's report, a recording's header). */
export interface EventLayout {
  data: { size: number; fields: Record<string, { offset: number; size: number }> };
  conn: { size: number; fields: Record<string, { offset: number; size: number }> };
  counters: { size: number; fields: Record<string, { offset: number; size: number }> };
  constants: Record<string, number>;
}

/**
 * Whether records written with `recorded` (a recording's header) decode with this layout: the
 * same record structs, and every constant it names has the value it has here. Constants added
 * since (a new reason code, say) do not change how its records read.
 */
export function readsLayout(recorded: unknown): boolean {
  if (typeof recorded !== 'object' || recorded === null) return false;
  const r = recorded as Partial<EventLayout>;
  const ours: EventLayout = EVENT_LAYOUT;
  if (!isDeepStrictEqual([r.data, r.conn, r.counters], [ours.data, ours.conn, ours.counters])) return false;
  if (typeof r.constants !== 'object' || r.constants === null) return false;
  return Object.entries(r.constants).every(([name, value]) => ours.constants[name] === value);
}

/** The attach cookie: low byte the function, the rest the probed file's index (TLSTAP_COOKIE). */
export function makeCookie(fileIndex: number, func: number): bigint {
  return (BigInt(fileIndex) << 8n) | BigInt(func);
}

/** What each REASON_* constant means, for output. */
export const CONN_REASONS: Readonly<Record<number, string>> = {
  0: '',
  1: 'no socket syscall seen inside its TLS calls (memory BIO?)',
  2: 'its fd is not a socket',
  3: 'its socket is not AF_INET/AF_INET6',
  4: 'its fd was closed or could not be read',
  // A close by a TLS call is named by the function itself (gnutls_bye, PR_Close) when the record says which.
  5: 'SSL_shutdown',
  6: 'SSL_free',
  7: 'close() of its fd',
  8: 'no kernel BTF to read its socket (pass --btf FILE)',
};
