// JSON Lines: one object per call, written byte by byte into the output buffer in a fixed field
// order because this is the hot path: no string is built per call, the parts that repeat (comm,
// file, SSL *, connection) are encoded once, and the payload is escaped by a WebAssembly kernel.

import type { CaptureContext, CaptureStats, ConnectionEvent, ConnectionInfo, TlsCall } from '../events/types.js';
import { connectionJson } from '../events/addresses.js';
import type { ByteTarget } from './batch.js';
import { MAX_NUMBER_TEXT, ascii, putBigInt, putBytes, putDigits, putNumber } from './bytes.js';
import { Base64Encoder } from './base64.js';
import { JsonEscaper } from './json-escape.js';
import { isNulFreeUtf8 } from './utf8-text.js';
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
  split_connections?: number;
  exit_cut_writes?: number;
  fd_conflicts?: number;
  unusable_records?: number;
  /** Connections --port/--host left out because their addresses never became known, and who they were. */
  unaddressed_excluded?: number;
  unaddressed_excluded_names?: string[];
  /** Live capture: the spill at its fullest, and the longest a record waited in it. */
  spill_peak_bytes?: number;
  spill_peak_file_bytes?: number;
  spill_max_delay_ms?: number;
  spill_full_waits?: number;
  spill_lost_records?: number;
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
          split_connections: stats.splitConnections ?? 0,
          exit_cut_writes: stats.exitCutWrites ?? 0,
          fd_conflicts: stats.fdConflicts ?? 0,
          unusable_records: stats.unusableRecords ?? 0,
        }),
    ...(stats.unaddressedExcluded
      ? { unaddressed_excluded: stats.unaddressedExcluded, unaddressed_excluded_names: stats.unaddressedExcludedNames ?? [] }
      : {}),
    ...(stats.spill
      ? {
          spill_peak_bytes: stats.spill.peakBytes,
          spill_peak_file_bytes: stats.spill.peakFileBytes,
          spill_max_delay_ms: Math.round(stats.spill.maxDelayMs),
          spill_full_waits: stats.spill.fullWaits,
          spill_lost_records: stats.spill.lostRecords,
        }
      : {}),
  };
}

const DATA_OPEN = '{"type":"data","ts":"';
const TS_NS = ascii('Z","ts_ns":"');
const TRUNCATED = ascii(',"truncated":');
const LOST = ascii(',"lost":');
const NOTHING_MISSING = ',"truncated":0,"lost":0';
const TEXT_OPEN = ascii('"text":"');
const BASE64_OPEN = ascii('"base64":"');
const LINE_END = ascii('"}\n');
/** Room for a data line's numbers and short constants (the cached parts are counted apart). */
const HEAD_ROOM = 128 + 6 * MAX_NUMBER_TEXT;

/** Writes `name` (the bytes up to the value: `,"lost":`) and the number; returns the position after it. */
function putNumberField(buf: Buffer, pos: number, name: Uint8Array, value: number): number {
  return putNumber(buf, putBytes(buf, pos, name), value);
}

/** `,"file":…,"ssl":"0x…","conn":…,` of a data line, and what it was made from. */
interface CallTail {
  fileIndex: number;
  fileName: string | undefined;
  ssl: bigint;
  bytes: Buffer;
  /** `,"truncated":0,"lost":0`, `bytes` and the payload's key: the rest of a call that lost nothing. */
  wholeText: Buffer;
  wholeBase64: Buffer;
  /** The middle part of this connection's latest read and write lines. */
  read?: CallMiddle;
  write?: CallMiddle;
}

/** `","pid":…,"len":` of a data line (what a thread repeats from call to call), and what it was made from. */
interface CallMiddle {
  pid: number;
  tid: number;
  uid: number;
  comm: string;
  func: string;
  bytes: Buffer;
}

/** `jsonl`: every captured byte of every call, as `text` when valid UTF-8 without NUL, else `base64`. */
export class JsonlFormat implements CallEncoder {
  /** The wall-clock second of the latest line, and "2024-05-01T12:34:56." for it. */
  private second = Number.NaN;
  private isoPrefixText = '';
  /** `{"type":"data","ts":"2024-05-01T12:34:56.` for that second. */
  private lineOpen: Uint8Array = new Uint8Array(0);
  /** The comm of the latest line, and its JSON. */
  private lastComm = '';
  private lastCommJson = '""';
  /** The tail of each connection's data lines, made once per connection. */
  private readonly tails = new WeakMap<ConnectionInfo, CallTail>();
  private tailWithoutConn: CallTail | undefined;
  /** JSON string (or null) of each file name, by file index; the name kept to notice changes. */
  private readonly fileNames: (string | undefined)[] = [];
  private readonly fileJson: string[] = [];
  private escaper: JsonEscaper | undefined;
  private base64: Base64Encoder | undefined;

  constructor(private readonly ctx: CaptureContext) {}

  /** Appends one JSON object and a newline. */
  encode(call: TlsCall, target: ByteTarget): void {
    const data = call.data;
    // A NUL marks binary that happens to be valid UTF-8 (HTTP/2 frame headers): base64 keeps it readable.
    const text = isNulFreeUtf8(data);
    this.putHead(call, text, target);
    if (text) {
      this.escaper ??= new JsonEscaper();
      this.escaper.append(data, target);
    } else {
      this.base64 ??= new Base64Encoder();
      this.base64.append(data, target);
    }
    target.reserve(LINE_END.length);
    target.pos = putBytes(target.buf, target.pos, LINE_END);
  }

  /** Everything of a data line before its payload, up to `"text":"` or `"base64":"`. */
  private putHead(call: TlsCall, text: boolean, target: ByteTarget): void {
    const us = Number(this.ctx.wallClockNs(call.tsNs) / 1000n);
    const second = Math.floor(us / 1e6);
    if (second !== this.second) this.newSecond(second);
    const tail = this.tail(call);
    const middle = this.middle(call, tail);
    target.reserve(HEAD_ROOM + this.lineOpen.length + middle.bytes.length + tail.wholeBase64.length);
    const buf = target.buf;
    let pos = target.pos;
    pos = putBytes(buf, pos, this.lineOpen);
    pos = putDigits(buf, pos, us - second * 1e6, 6);
    pos = putBytes(buf, pos, TS_NS);
    pos = putBigInt(buf, pos, call.tsNs);
    pos = putBytes(buf, pos, middle.bytes);
    pos = putNumber(buf, pos, call.totalLen);
    // Most calls lose nothing: the rest of their head is made once per connection.
    if (call.truncated === 0 && call.lost === 0) {
      target.pos = putBytes(buf, pos, text ? tail.wholeText : tail.wholeBase64);
      return;
    }
    pos = putNumberField(buf, pos, TRUNCATED, call.truncated);
    pos = putNumberField(buf, pos, LOST, call.lost);
    pos = putBytes(buf, pos, tail.bytes);
    pos = putBytes(buf, pos, text ? TEXT_OPEN : BASE64_OPEN);
    target.pos = pos;
  }

  /** A new wall-clock second: "2024-05-01T12:34:56." for it. */
  private newSecond(second: number): void {
    this.second = second;
    // "2024-05-01T12:34:56.000Z" -> "2024-05-01T12:34:56."
    this.isoPrefixText = new Date(second * 1000).toISOString().slice(0, -4);
    this.lineOpen = Buffer.from(DATA_OPEN + this.isoPrefixText, 'latin1');
  }

  /** `,"file":…,"ssl":"0x…","conn":…,`, made once per connection (and again if its file or SSL * changes). */
  private tail(call: TlsCall): CallTail {
    const conn = call.conn;
    const fileName = this.ctx.files[call.fileIndex];
    let tail = conn ? this.tails.get(conn) : this.tailWithoutConn;
    if (tail === undefined || tail.fileIndex !== call.fileIndex || tail.fileName !== fileName || tail.ssl !== call.ssl) {
      const json = `,"file":${this.file(call.fileIndex)},"ssl":"0x${call.ssl.toString(16)}","conn":${conn ? connectionJson(conn) : 'null'},`;
      const bytes = Buffer.from(json, 'utf8');
      const whole = NOTHING_MISSING + json;
      tail = {
        fileIndex: call.fileIndex,
        fileName,
        ssl: call.ssl,
        bytes,
        wholeText: Buffer.concat([Buffer.from(whole, 'utf8'), TEXT_OPEN]),
        wholeBase64: Buffer.concat([Buffer.from(whole, 'utf8'), BASE64_OPEN]),
      };
      if (conn) this.tails.set(conn, tail);
      else this.tailWithoutConn = tail;
    }
    return tail;
  }

  /** `","pid":…,"len":`, made again only when it differs from the connection's latest in that direction. */
  private middle(call: TlsCall, tail: CallTail): CallMiddle {
    const last = call.dir === 'write' ? tail.write : tail.read;
    if (last !== undefined && last.pid === call.pid && last.tid === call.tid && last.uid === call.uid && last.comm === call.comm && last.func === call.func) {
      return last;
    }
    const json = `","pid":${call.pid},"tid":${call.tid},"uid":${call.uid},"comm":${this.comm(call.comm)},"func":${JSON.stringify(call.func)},"dir":"${call.dir}","len":`;
    const middle: CallMiddle = { pid: call.pid, tid: call.tid, uid: call.uid, comm: call.comm, func: call.func, bytes: Buffer.from(json, 'utf8') };
    if (call.dir === 'write') tail.write = middle;
    else tail.read = middle;
    return middle;
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

  /** ISO-8601 UTC with microseconds; the date and time part is recomputed once per second. */
  private iso(wallNs: bigint): string {
    const us = Number(wallNs / 1000n);
    const second = Math.floor(us / 1e6);
    if (second !== this.second) this.newSecond(second);
    const micro = us - second * 1e6;
    return `${this.isoPrefixText}${String(micro).padStart(6, '0')}Z`;
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
