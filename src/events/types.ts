/** Which way plaintext moved, seen from the traced process. */
export type Direction = 'read' | 'write';

/** The TLS functions whose calls carry plaintext, in the order of `enum tlstap_func` in bpf/tlstap.h. */
export const TLS_FUNCTIONS = [
  // OpenSSL, BoringSSL, LibreSSL
  'SSL_read',
  'SSL_write',
  'SSL_read_ex',
  'SSL_write_ex',
  // GnuTLS
  'gnutls_record_recv',
  'gnutls_record_send',
  // NSS: NSPR's I/O on a file descriptor with the SSL layer pushed on it
  'PR_Read',
  'PR_Write',
  'PR_Recv',
  'PR_Send',
] as const;

/** A TLS function whose calls carry plaintext. */
export type TlsFunction = (typeof TLS_FUNCTIONS)[number];

/** Functions that only tell about a connection: its fd, its end (entry probes only). */
export const LIFECYCLE_FUNCTIONS = [
  'SSL_set_fd',
  'SSL_set_rfd',
  'SSL_set_wfd',
  'SSL_shutdown',
  'SSL_free',
  'gnutls_transport_set_int2',
  'gnutls_bye',
  'gnutls_deinit',
  'PR_Close',
] as const;

/**
 * Go's crypto/tls, compiled into Go programs and probed by its own programs (bpf/go.bpf.h): Read at
 * entry and at each return instruction, Write at entry. Both carry plaintext.
 */
export const GO_FUNCTIONS = ['crypto/tls.(*Conn).Read', 'crypto/tls.(*Conn).Write'] as const;

/** One of GO_FUNCTIONS. */
export type GoTlsFunction = (typeof GO_FUNCTIONS)[number];

/** Every probed function, in the order of `enum tlstap_func` (its index is the function's number). */
export const PROBED_FUNCTIONS = [...TLS_FUNCTIONS, ...LIFECYCLE_FUNCTIONS, ...GO_FUNCTIONS] as const;

/** A function whose calls carry plaintext: a TLS library's or Go's. */
export type DataFunction = TlsFunction | GoTlsFunction;

/** The data function numbered `func` (enum tlstap_func), or undefined for a lifecycle function or an unknown number. */
export function dataFunctionName(func: number): DataFunction | undefined {
  if (func < TLS_FUNCTIONS.length) return TLS_FUNCTIONS[func];
  const go = func - TLS_FUNCTIONS.length - LIFECYCLE_FUNCTIONS.length;
  return go >= 0 ? GO_FUNCTIONS[go] : undefined;
}

/** Whether `name` is one of Go's functions (probed through a Go program's probe plan, not as a library's). */
export function isGoFunction(name: ProbedFunction): name is GoTlsFunction {
  return (GO_FUNCTIONS as readonly string[]).includes(name);
}

/** Any probed function. */
export type ProbedFunction = (typeof PROBED_FUNCTIONS)[number];

/** Whether calls of a library's `name` carry plaintext (and so get a return probe). */
export function isDataFunction(name: ProbedFunction): name is TlsFunction {
  return (TLS_FUNCTIONS as readonly string[]).includes(name);
}

/** One side of a connection. */
export interface Endpoint {
  /** IPv4 dotted quad or IPv6 text form (RFC 5952). */
  ip: string;
  port: number;
}

/** Which connection a call belongs to: one per (pid, TLS object) within a run. */
export interface ConnectionInfo {
  /** Unique within a run, even when an fd number or an SSL * address is reused. */
  id: number;
  pid: number;
  /** The TLS object (SSL *) this connection is. */
  ssl: bigint;
  /** The socket's fd in the process, or -1 when unknown. */
  fd: number;
  /** Addresses when the socket is INET/INET6 and was seen; absent when unknown. */
  local?: Endpoint;
  remote?: Endpoint;
  /** Why the addresses are unknown (memory BIO, not a socket, not yet seen ...). */
  unknownReason?: string;
}

/** A connection's lifecycle: first sighting and end. */
export interface ConnectionEvent {
  type: 'open' | 'close';
  /** CLOCK_MONOTONIC nanoseconds. */
  tsNs: bigint;
  conn: ConnectionInfo;
  comm: string;
  /** For close: what ended it (SSL_free, SSL_shutdown, close of the fd, end of capture). */
  reason?: string;
}

/** One TLS library call with its chunks joined back together. */
export interface TlsCall {
  /** CLOCK_MONOTONIC nanoseconds at the call's return. */
  tsNs: bigint;
  pid: number;
  tid: number;
  uid: number;
  comm: string;
  func: DataFunction;
  dir: Direction;
  /** Address of the TLS object (SSL *) the call was made on. */
  ssl: bigint;
  /** Index of the probed file in the capture's file list (CaptureContext.files). */
  fileIndex: number;
  /** Bytes the call moved, captured or not. */
  totalLen: number;
  /**
   * The captured plaintext: totalLen minus truncated minus lost bytes. Often a view of the batch
   * it came in, whose memory is reused once the batch is done: copy what you keep past write().
   */
  data: Buffer;
  /** Bytes beyond the per-call cap (--max-bytes), never copied. */
  truncated: number;
  /** Bytes that were copied in the kernel but lost on the way (ring buffer full, unreadable memory). */
  lost: number;
  /** Where the lost bytes were, in order: set when `lost` > 0 (their lengths add up to it). */
  holes?: readonly CallHole[];
  /** The connection; always set once the call has passed the connection tracker. */
  conn?: ConnectionInfo;
  /** Calls of this connection just before this one that never arrived (their records were dropped). */
  callsMissedBefore?: number;
}

/** `length` bytes of a call that were lost just before `data[at]` (`at` = data.length: at the end). */
export interface CallHole {
  at: number;
  length: number;
}

/**
 * Walks a call's captured bytes around its holes, in stream order: `data` for each captured piece
 * (views of call.data) and `hole` for each lost run. A call without holes is one piece.
 */
export function walkHoles(call: TlsCall, data: (piece: Buffer, end: boolean) => void, hole: (length: number) => void): void {
  let at = 0;
  for (const h of call.holes ?? []) {
    if (h.at > at) data(call.data.subarray(at, h.at), h.at === call.data.length);
    hole(h.length);
    at = h.at;
  }
  if (at < call.data.length || call.holes === undefined) data(at === 0 ? call.data : call.data.subarray(at), true);
}

/** What output formats need to know about the capture besides the calls. */
export interface CaptureContext {
  /** Probed files, indexed by TlsCall.fileIndex. */
  files: readonly string[];
  /** Wall-clock nanoseconds since the epoch for a CLOCK_MONOTONIC timestamp. */
  wallClockNs(monotonicNs: bigint): bigint;
}

/** The live capture's spill: records read from the ring buffer, waiting for the outputs (native/core/spill.h). */
export interface SpillStats {
  /** Bytes held now, in memory and in the file. */
  bytes: number;
  /** Of which in the file. */
  fileBytes: number;
  /** The most held at once. */
  peakBytes: number;
  peakFileBytes: number;
  /** How long the oldest record held has waited: how late the output is now. */
  delayMs: number;
  /** The longest any record waited. */
  maxDelayMs: number;
  /** Times the spill was full: the poller waited while the ring buffer filled (its drops are the kernel's count). */
  fullWaits: number;
  /** Records the spill file could not give back (a read error), and their bytes. */
  lostRecords: number;
  lostBytes: number;
  /** Why the spill file could not be made or written, if it could not. */
  fileError?: string;
  /** Batches handed to the outputs straight from the poller, and those that went through the spill. */
  directBatches?: number;
  spilledBatches?: number;
  /** Batches the addon allocated: a steady capture makes a few and reuses them. */
  batchesMade?: number;
}

/** Totals for the end-of-run summary; every loss has its own count. */
export interface CaptureStats {
  calls: number;
  bytes: number;
  /** Ring-buffer records the kernel had no room for. */
  eventsDropped: number;
  /** Payload bytes of those records. */
  bytesDropped: number;
  /** Bytes beyond the per-call cap. */
  bytesTruncated: number;
  /** Records lost because the traced process's memory could not be read. */
  readFaults: number;
  readFaultBytes: number;
  /** Connections seen (when the pipeline tracks them). */
  connections?: number;
  /** Calls of a connection that never arrived because their records were dropped (not read faults): skipped over in its order. */
  missingCalls?: number;
  /** Writes in flight when their thread exited (a process killed inside SSL_write): never seen. */
  exitCutWrites?: number;
  /** Connections split in two: the kernel's connection map evicted their state, and they went on under a new id. */
  splitConnections?: number;
  /** Calls sent without a connection because the kernel's connection map refused the entry. */
  untrackedCalls?: number;
  /** Calls in which two different sockets were used (the first is shown). */
  fdConflicts?: number;
  /** Records this version could not decode (unknown kind, malformed). */
  unusableRecords?: number;
  /** Connections --port/--host left out because their addresses never became known. */
  unaddressedExcluded?: number;
  /** Who they were, the first few: `comm (pid P, connection C): reason`. */
  unaddressedExcludedNames?: string[];
  /** Live capture: what waited between the ring buffer and the outputs. */
  spill?: SpillStats;
}

/** A consumer of joined calls: an output format or a file writer. */
export interface CallSink {
  /** Takes one call; `call.data` is valid during this call only (copy what you keep). */
  write(call: TlsCall): void;
  /** Connection lifecycle records, before the first call of a connection and after its last. */
  connection?(event: ConnectionEvent): void;
  /** Flushes and closes; resolves when every byte is written. */
  close(): Promise<void>;
  /** True while the sink's output is behind and the producer should pause. */
  readonly needsDrain?: boolean;
  /** Resolves when the sink can take more. */
  drained?(): Promise<void>;
}
