// JSON Lines: one object per call, built by hand in a fixed field order because this is the
// hot path (JSON.stringify only for the strings that may need escaping).

import { isUtf8 } from 'node:buffer';
import type { CaptureContext, CaptureStats, ConnectionEvent, ConnectionInfo, TlsCall } from '../events/types.js';
import { connectionJson } from '../events/addresses.js';
import type { ByteTarget } from './batch.js';
import type { CallEncoder } from './text.js';

/** What a `type: "data"` line holds, for consumers of the jsonl output. */
export interface DataRecord {
  type: 'data';
  /** Wall clock, ISO-8601 UTC with microseconds. */
  ts: string;
  /** CLOCK_MONOTONIC nanoseconds at the call's return, as a decimal string. */
  ts_ns: string;
  pid: number;
  tid: number;
  uid: number;
  comm: string;
  func: string;
  dir: 'read' | 'write';
  /** Bytes the call moved. */
  len: number;
  truncated: number;
  lost: number;
  /** The probed file, or null when the index is unknown. */
  file: string | null;
  /** The SSL * the call was made on, `0x…`. */
  ssl: string;
  /** The connection; null only for calls that never passed the connection tracker. */
  conn: ConnectionRecordConn | null;
  /** The captured bytes when they are valid UTF-8 ... */
  text?: string;
  /** ... else base64. */
  base64?: string;
}

/** The `conn` object of data, open and close lines. */
export interface ConnectionRecordConn {
  id: number;
  /** -1 when unknown. */
  fd: number;
  local: { ip: string; port: number } | null;
  remote: { ip: string; port: number } | null;
  /** Why the addresses are unknown; absent when they are known. */
  unknown?: string;
}

/** A `type: "open"` or `type: "close"` line: a connection's first sighting and its end. */
export interface ConnectionRecord {
  type: 'open' | 'close';
  ts: string;
  ts_ns: string;
  pid: number;
  comm: string;
  ssl: string;
  conn: ConnectionRecordConn;
  /** For close: SSL_shutdown, SSL_free, close() of its fd, or end of capture. */
  reason?: string;
}

/** The `type: "summary"` line written at the end of a jsonl stream; every loss has its own field. */
export interface SummaryRecord {
  type: 'summary';
  calls: number;
  bytes: number;
  events_dropped: number;
  bytes_dropped: number;
  bytes_truncated: number;
  read_faults: number;
  read_fault_bytes: number;
  connections?: number;
  missing_calls?: number;
  untracked_calls?: number;
  fd_conflicts?: number;
  unusable_records?: number;
}

/** The summary object for the end of a jsonl stream (write it as one JSON line). */
export function summaryRecord(stats: CaptureStats): SummaryRecord {
  return {
    type: 'summary',
    calls: stats.calls,
    bytes: stats.bytes,
    events_dropped: stats.eventsDropped,
    bytes_dropped: stats.bytesDropped,
    bytes_truncated: stats.bytesTruncated,
    read_faults: stats.readFaults,
    read_fault_bytes: stats.readFaultBytes,
    ...(stats.connections === undefined
      ? {}
      : {
          connections: stats.connections,
          missing_calls: stats.missingCalls ?? 0,
          untracked_calls: stats.untrackedCalls ?? 0,
          fd_conflicts: stats.fdConflicts ?? 0,
          unusable_records: stats.unusableRecords ?? 0,
        }),
  };
}

/** Per byte value: how many bytes its JSON escape takes (0: the byte goes out as is). */
const ESCAPE_LEN = new Uint8Array(256);
/** Per byte value: its JSON escape, in a 6-byte slot. */
const ESCAPE_BYTES = new Uint8Array(256 * 6);
for (let b = 0; b < 0x20; b++) setEscape(b, `\\u${b.toString(16).padStart(4, '0')}`);
setEscape(0x08, '\\b');
setEscape(0x09, '\\t');
setEscape(0x0a, '\\n');
setEscape(0x0c, '\\f');
setEscape(0x0d, '\\r');
setEscape(0x22, '\\"');
setEscape(0x5c, '\\\\');

function setEscape(b: number, escape: string): void {
  ESCAPE_LEN[b] = escape.length;
  for (let i = 0; i < escape.length; i++) ESCAPE_BYTES[b * 6 + i] = escape.charCodeAt(i);
}

/** Verbatim runs shorter than this are copied byte by byte rather than by Buffer.copy. */
const SHORT_RUN = 16;
/** Payload bytes escaped per reserve(): output room for 6 bytes each, so no checks in the loops. */
const BLOCK = 8192;

/** Appends the JSON escape of byte `b` (ESCAPE_LEN[b] > 0) at `pos`; returns the new position. */
function putEscape(buf: Buffer, pos: number, b: number): number {
  const k = b * 6;
  const end = k + ESCAPE_LEN[b]!;
  buf[pos++] = ESCAPE_BYTES[k]!;
  buf[pos++] = ESCAPE_BYTES[k + 1]!;
  for (let e = k + 2; e < end; e++) buf[pos++] = ESCAPE_BYTES[e]!;
  return pos;
}

/** Escapes `src[from, to)` byte by byte into `buf` at `pos`: the fast way when escapes are dense. */
function escapeBytewise(src: Buffer, from: number, to: number, buf: Buffer, pos: number): number {
  for (let i = from; i < to; i++) {
    const b = src[i]!;
    if (ESCAPE_LEN[b] === 0) buf[pos++] = b;
    else pos = putEscape(buf, pos, b);
  }
  return pos;
}

/** `jsonl`: every captured byte of every call, as `text` when valid UTF-8, else `base64`. */
export class JsonlFormat implements CallEncoder {
  private second = Number.NaN;
  private isoPrefix = '';
  private lastComm = '';
  private lastCommJson = '""';
  private lastSsl = -1n;
  private lastSslHex = '';
  private lastConn: ConnectionInfo | undefined;
  private lastConnJson = 'null';
  /** JSON string (or null) of each file name, by file index; the name kept to notice changes. */
  private readonly fileNames: (string | undefined)[] = [];
  private readonly fileJson: string[] = [];
  /** A 4-byte aligned copy of the payload, scanned a 32-bit word at a time. */
  private scratch = Buffer.alloc(0);
  private words = new Uint32Array(0);

  constructor(private readonly ctx: CaptureContext) {}

  /** Appends one JSON object and a newline. */
  encode(call: TlsCall, target: ByteTarget): void {
    const data = call.data;
    const text = isUtf8(data);
    if (call.ssl !== this.lastSsl) {
      this.lastSsl = call.ssl;
      this.lastSslHex = call.ssl.toString(16);
    }
    target.writeString(
      `{"type":"data","ts":"${this.iso(this.ctx.wallClockNs(call.tsNs))}","ts_ns":"${call.tsNs}",` +
        `"pid":${call.pid},"tid":${call.tid},"uid":${call.uid},"comm":${this.comm(call.comm)},` +
        `"func":"${call.func}","dir":"${call.dir}","len":${call.totalLen},` +
        `"truncated":${call.truncated},"lost":${call.lost},"file":${this.file(call.fileIndex)},` +
        `"ssl":"0x${this.lastSslHex}","conn":${this.conn(call.conn)},${text ? '"text":"' : '"base64":"'}`,
    );
    if (text) this.appendJsonText(target, data);
    else target.writeString(data.toString('base64'));
    target.writeString('"}\n');
  }

  /** A connection's `open` or `close` record. */
  encodeConnection(event: ConnectionEvent, target: ByteTarget): void {
    const reason = event.reason === undefined ? '' : `,"reason":${JSON.stringify(event.reason)}`;
    target.writeString(
      `{"type":"${event.type}","ts":"${this.iso(this.ctx.wallClockNs(event.tsNs))}","ts_ns":"${event.tsNs}",` +
        `"pid":${event.conn.pid},"comm":${this.comm(event.comm)},"ssl":"0x${event.conn.ssl.toString(16)}",` +
        `"conn":${connectionJson(event.conn)}${reason}}\n`,
    );
  }

  /** The `conn` object, cached while calls keep coming on one connection. */
  private conn(conn: ConnectionInfo | undefined): string {
    if (conn !== this.lastConn) {
      this.lastConn = conn;
      this.lastConnJson = conn ? connectionJson(conn) : 'null';
    }
    return this.lastConnJson;
  }

  /**
   * Appends UTF-8 `data` as the inside of a JSON string. Only `"`, `\\` and C0 controls need an
   * escape, all ASCII, so the bytes are copied as they are with escapes put between the runs.
   * 32-bit words without any such byte are skipped whole (SWAR tests); once escapes turn out to be
   * dense (JSON bodies are full of quotes), a plain byte loop is faster and takes over.
   */
  private appendJsonText(target: ByteTarget, data: Buffer): void {
    const n = data.length;
    if (this.scratch.length < n + 4) {
      const buffer = new ArrayBuffer(Math.max(n + 4, 2 * this.scratch.length, 4096) & ~3);
      this.scratch = Buffer.from(buffer);
      this.words = new Uint32Array(buffer);
    }
    const src = this.scratch;
    const words = this.words;
    data.copy(src, 0, 0, n);
    let buf = target.buf;
    let pos = target.pos;
    // First byte not yet in the output.
    let run = 0;
    let escapes = 0;
    let dense = false;
    for (let start = 0; start < n; start += BLOCK) {
      const end = Math.min(n, start + BLOCK);
      target.pos = pos;
      target.reserve(start - run + 6 * (end - start));
      buf = target.buf;
      pos = target.pos;
      let i = start;
      if (!dense) {
        const wordEnd = end >>> 2;
        for (let j = start >>> 2; j < wordEnd; j++) {
          const x = words[j]!;
          // A byte lane's high bit is set when that byte is < 0x20 (x - 0x20 borrows) or equals
          // " or \ (the XOR leaves a zero byte).
          const q = x ^ 0x22222222;
          const s = x ^ 0x5c5c5c5c;
          if (((((x - 0x20202020) & ~x) | ((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s)) & 0x80808080) === 0) {
            continue;
          }
          for (let k = j << 2, stop = k + 4; k < stop; k++) {
            const b = src[k]!;
            if (ESCAPE_LEN[b] === 0) continue;
            if (k - run < SHORT_RUN) while (run < k) buf[pos++] = src[run++]!;
            else pos += src.copy(buf, pos, run, k);
            pos = putEscape(buf, pos, b);
            run = k + 1;
            escapes++;
          }
          // More than one escape per 16 bytes so far: switch to the byte loop.
          if (escapes >= 16 && escapes * 16 > (j + 1) * 4) {
            dense = true;
            i = (j + 1) * 4;
            break;
          }
        }
        if (!dense) {
          // The bytes after the last whole word.
          for (let k = wordEnd * 4; k < end; k++) {
            const b = src[k]!;
            if (ESCAPE_LEN[b] === 0) continue;
            while (run < k) buf[pos++] = src[run++]!;
            pos = putEscape(buf, pos, b);
            run = k + 1;
          }
          continue;
        }
      }
      // Dense: copy what is pending, then escape the rest of the block byte by byte.
      if (i > run) pos += src.copy(buf, pos, run, i);
      pos = escapeBytewise(src, i, end, buf, pos);
      run = end;
    }
    if (n > run) pos += src.copy(buf, pos, run, n);
    target.pos = pos;
  }

  /** ISO-8601 UTC with microseconds; the date and time part is recomputed once per second. */
  private iso(wallNs: bigint): string {
    const us = Number(wallNs / 1000n);
    const second = Math.floor(us / 1e6);
    if (second !== this.second) {
      this.second = second;
      // "2024-05-01T12:34:56.000Z" -> "2024-05-01T12:34:56."
      this.isoPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    }
    const micro = us - second * 1e6;
    return `${this.isoPrefix}${String(micro).padStart(6, '0')}Z`;
  }

  private comm(comm: string): string {
    if (comm !== this.lastComm) {
      this.lastComm = comm;
      this.lastCommJson = JSON.stringify(comm);
    }
    return this.lastCommJson;
  }

  private file(index: number): string {
    const name = this.ctx.files[index];
    if (this.fileNames[index] !== name || this.fileJson[index] === undefined) {
      this.fileNames[index] = name;
      this.fileJson[index] = name === undefined ? 'null' : JSON.stringify(name);
    }
    return this.fileJson[index]!;
  }
}
