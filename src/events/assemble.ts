import { CONN_REASONS, EVENT_LAYOUT } from './layout.js';
import { formatIpv4, formatIpv6 } from './addresses.js';
import { decodeCountersRecord } from './counters.js';
import type { KernelCounters } from './counters.js';
import { PROBED_FUNCTIONS, dataFunctionName } from './types.js';
import type { CallHole, Endpoint, TlsCall } from './types.js';

const D = EVENT_LAYOUT.data.fields;
const DATA_HEADER = EVENT_LAYOUT.data.size;
const C = EVENT_LAYOUT.conn.fields;
const CONN_SIZE = EVENT_LAYOUT.conn.size;
const K = EVENT_LAYOUT.constants;
const COMM_LEN = K.COMM_LEN;
const AF_INET = 2;
const AF_INET6 = 10;

/** A call as decoded, before the connection tracker: the kernel's connection id and sequence number. */
export interface DecodedCall {
  call: TlsCall;
  connId: number;
  seq: number;
  fd: number;
  fdConflict: boolean;
}

/** A connection record as decoded from the kernel. */
export interface DecodedConn {
  /** 'exit': the process ended; every connection of `pid` ends with it. */
  kind: 'open' | 'fd' | 'close' | 'exit';
  tsNs: bigint;
  connId: number;
  pid: number;
  tid: number;
  comm: string;
  ssl: bigint;
  fd: number;
  local?: Endpoint;
  remote?: Endpoint;
  /** Why addresses are unknown (open/fd), or what closed the connection (close). */
  reason: string;
  /** For close: how many calls the connection had. */
  calls: number;
}

/** Receives what the decoder makes of the records, in ring-buffer order. */
export interface DecoderOutput {
  call(decoded: DecodedCall): void;
  conn(decoded: DecodedConn): void;
  /** The kernel counters a recording ends with. */
  counters?(counters: KernelCounters): void;
}

/** A call whose chunks are still arriving (they share tid and ts_ns). */
interface PendingCall {
  decoded: DecodedCall;
  chunks: Buffer[];
  /** Offset within the call where the next chunk should start. */
  next: number;
  /** Bytes of the call the kernel copied (total minus truncated). */
  captured: number;
  /** The batch that brought its latest chunk. */
  batch: number;
  /** How many of `chunks` are copies; the rest are views of the current batch. */
  owned: number;
  /** Bytes in `chunks` so far. */
  have: number;
  /** Chunks that never came, at their place in the joined data. */
  holes: CallHole[];
}

/** Counts of records the decoder could not use. */
export interface DecoderStats {
  /** Records of a kind this version does not know (newer BPF program?). */
  unknownRecords: number;
  /** Records shorter than their header says. */
  malformedRecords: number;
}

const CONN_KINDS: readonly DecodedConn['kind'][] = ['open', 'fd', 'close', 'exit'];

/**
 * What a connection record's reason code means. A close by a TLS call names the function that was
 * called, from the probe's cookie: gnutls_bye or PR_Close, not OpenSSL's names for them.
 */
function connReason(code: number, func: number): string {
  const byCall = code === K.REASON_SHUTDOWN || code === K.REASON_FREE;
  if (byCall && dataFunctionName(func) === undefined && func < PROBED_FUNCTIONS.length) return PROBED_FUNCTIONS[func]!;
  return CONN_REASONS[code] ?? `reason ${code}`;
}

/** A u64 that stays below 2^53 (ids, counts) as a number, without a BigInt. */
function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}

function readComm(buf: Buffer, start: number): string {
  const commStart = start + D.comm.offset;
  let commEnd = buf.indexOf(0, commStart);
  if (commEnd < 0 || commEnd > commStart + COMM_LEN) commEnd = commStart + COMM_LEN;
  return buf.toString('utf8', commStart, commEnd);
}

/** The comm of the latest record, kept with its 16 raw bytes: most records repeat it. */
class CommCache {
  private readonly raw = [0, 0, 0, 0];
  private text = '';

  /** The comm of the record at buf[start] (`v` a view of buf), decoded only when its bytes differ from the last one's. */
  read(buf: Buffer, v: DataView<ArrayBufferLike>, start: number): string {
    const at = start + D.comm.offset;
    const raw = this.raw;
    let same = this.text !== '';
    for (let i = 0; i < 4; i++) {
      const word = v.getUint32(at + 4 * i, true);
      if (word !== raw[i]) {
        raw[i] = word;
        same = false;
      }
    }
    if (!same) this.text = readComm(buf, start);
    return this.text;
  }
}

/**
 * A call still waiting for chunks when its batch ends: copies the chunks that are views of the
 * batch, whose memory goes back to the poller (live capture releases each batch after it).
 */
function keepPastBatch(pending: PendingCall): void {
  for (let i = pending.owned; i < pending.chunks.length; i++) pending.chunks[i] = Buffer.from(pending.chunks[i]!);
  pending.owned = pending.chunks.length;
}

/**
 * Turns batches of ring-buffer records into whole calls and connection records. Single-chunk
 * calls come straight from the batch (no copy), and chunks of a call that outlives its batch are
 * copied at the batch's end; multi-chunk calls are joined, and any chunk
 * missing from the head, middle or end (ring buffer full) is counted in the call's `lost`.
 */
export class RecordDecoder {
  private readonly pending = new Map<number, PendingCall>();
  private batchNumber = 0;
  private readonly comms = new CommCache();
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private viewBuffer: Buffer | undefined;
  private lastSsl = 0n;
  private lastSslLow = 0;
  private lastSslHigh = 0;
  readonly stats: DecoderStats = { unknownRecords: 0, malformedRecords: 0 };

  constructor(private readonly out: DecoderOutput) {}

  /** Consumes one batch: `count` records framed as [u32 LE length][record]. */
  pushBatch(batch: Buffer, count: number): void {
    this.batchNumber++;
    let pos = 0;
    for (let i = 0; i < count && pos + 4 <= batch.length; i++) {
      const length = batch.readUInt32LE(pos);
      const start = pos + 4;
      pos = start + length;
      if (pos > batch.length) {
        this.stats.malformedRecords++;
        return;
      }
      this.pushRecord(batch, start, length);
    }
  }

  /** Consumes one record at buf[start, start+length). */
  pushRecord(buf: Buffer, start: number, length: number): void {
    if (length < D.kind.offset + 4) {
      this.stats.malformedRecords++;
      return;
    }
    const kind = buf.readUInt32LE(start + D.kind.offset);
    if (kind === K.EVENT_DATA) this.pushData(buf, start, length);
    else if (kind >= K.EVENT_CONN_OPEN && kind <= K.EVENT_PROCESS_EXIT) this.pushConn(buf, start, length, kind);
    else if (kind === K.EVENT_COUNTERS && length >= EVENT_LAYOUT.counters.size) this.out.counters?.(decodeCountersRecord(buf, start));
    else this.stats.unknownRecords++;
  }

  /**
   * After a batch: a call that got no chunk in it will get none (the kernel writes a call's chunks
   * in one go), so it goes out now with what is missing counted as lost, not when its thread calls again.
   */
  endBatch(): void {
    for (const [tid, pending] of this.pending) {
      if (pending.batch !== this.batchNumber) this.finish(tid, pending);
      else keepPastBatch(pending);
    }
  }

  /** Emits every call still waiting for chunks, counting what never came as lost. */
  flush(): void {
    for (const [tid, pending] of this.pending) this.finish(tid, pending);
  }

  private pushData(buf: Buffer, start: number, length: number): void {
    const v = this.viewOf(buf);
    const chunkLen = length >= DATA_HEADER ? v.getUint32(start + D.chunk_len.offset, true) : 0;
    if (length < DATA_HEADER || DATA_HEADER + chunkLen > length || dataFunctionName(buf[start + D.func.offset]!) === undefined) {
      this.stats.malformedRecords++;
      return;
    }
    const tid = v.getUint32(start + D.tid.offset, true);
    const tsNs = v.getBigUint64(start + D.ts_ns.offset, true);
    const offset = v.getUint32(start + D.chunk_offset.offset, true);
    const captured = v.getUint32(start + D.total_len.offset, true) - v.getUint32(start + D.truncated.offset, true);
    const data = buf.subarray(start + DATA_HEADER, start + DATA_HEADER + chunkLen);

    let pending = this.pending.get(tid);
    if (pending && pending.decoded.call.tsNs !== tsNs) {
      this.finish(tid, pending);
      pending = undefined;
    }
    if (!pending) {
      const decoded = this.decodeCall(buf, start, tid, tsNs, data, offset);
      if (offset === 0 && chunkLen >= captured) {
        this.out.call(decoded);
        return;
      }
      const holes = offset > 0 ? [{ at: 0, length: offset }] : [];
      pending = { decoded, chunks: [], next: offset, captured, batch: this.batchNumber, owned: 0, have: 0, holes };
      this.pending.set(tid, pending);
    } else if (offset > pending.next) {
      pending.decoded.call.lost += offset - pending.next;
      pending.holes.push({ at: pending.have, length: offset - pending.next });
    }
    pending.chunks.push(data);
    pending.have += data.length;
    pending.batch = this.batchNumber;
    pending.next = offset + chunkLen;
    if (pending.next >= captured) this.finish(tid, pending);
  }

  private finish(tid: number, pending: PendingCall): void {
    this.pending.delete(tid);
    const call = pending.decoded.call;
    if (pending.next < pending.captured) {
      call.lost += pending.captured - pending.next;
      pending.holes.push({ at: pending.have, length: pending.captured - pending.next });
    }
    if (pending.holes.length > 0) call.holes = pending.holes;
    call.data = pending.chunks.length === 1 ? pending.chunks[0]! : Buffer.concat(pending.chunks);
    this.out.call(pending.decoded);
  }

  private decodeCall(buf: Buffer, start: number, tid: number, tsNs: bigint, data: Buffer, lostAtStart: number): DecodedCall {
    const v = this.viewOf(buf);
    const func = buf[start + D.func.offset]!;
    // The cookie's file index is its bits 8..31 (TLSTAP_COOKIE): no BigInt needed.
    const fileIndex = v.getUint32(start + D.cookie.offset, true) >>> 8;
    const call: TlsCall = {
      tsNs,
      pid: v.getUint32(start + D.pid.offset, true),
      tid,
      uid: v.getUint32(start + D.uid.offset, true),
      comm: this.comms.read(buf, v, start),
      func: dataFunctionName(func)!,
      dir: buf[start + D.dir.offset] === K.DIR_WRITE ? 'write' : 'read',
      ssl: this.ssl(v, start + D.ssl.offset),
      fileIndex,
      totalLen: v.getUint32(start + D.total_len.offset, true),
      data,
      truncated: v.getUint32(start + D.truncated.offset, true),
      lost: lostAtStart,
    };
    return {
      call,
      connId: v.getUint32(start + D.conn_id.offset, true) + v.getUint32(start + D.conn_id.offset + 4, true) * 0x1_0000_0000,
      seq: v.getUint32(start + D.seq.offset, true),
      fd: v.getInt32(start + D.fd.offset, true),
      fdConflict: (buf[start + D.flags.offset]! & K.FLAG_FD_CONFLICT) !== 0,
    };
  }

  /** A DataView of `buf`, kept while records come from the same batch (its reads are cheaper than Buffer's). */
  private viewOf(buf: Buffer): DataView<ArrayBufferLike> {
    if (buf !== this.viewBuffer) {
      this.viewBuffer = buf;
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    return this.view;
  }

  /** The SSL * at `at`: the BigInt of the previous record again when its 8 bytes are the same. */
  private ssl(v: DataView<ArrayBufferLike>, at: number): bigint {
    const low = v.getUint32(at, true);
    const high = v.getUint32(at + 4, true);
    if (low !== this.lastSslLow || high !== this.lastSslHigh) {
      this.lastSslLow = low;
      this.lastSslHigh = high;
      this.lastSsl = v.getBigUint64(at, true);
    }
    return this.lastSsl;
  }

  private pushConn(buf: Buffer, start: number, length: number, kind: number): void {
    if (length < CONN_SIZE) {
      this.stats.malformedRecords++;
      return;
    }
    const family = buf.readUInt16LE(start + C.family.offset);
    const reasonCode = buf[start + C.reason.offset]!;
    const decoded: DecodedConn = {
      kind: CONN_KINDS[kind - K.EVENT_CONN_OPEN]!,
      tsNs: buf.readBigUInt64LE(start + C.ts_ns.offset),
      connId: readU64(buf, start + C.conn_id.offset),
      pid: buf.readUInt32LE(start + C.pid.offset),
      tid: buf.readUInt32LE(start + C.tid.offset),
      comm: readComm(buf, start),
      ssl: buf.readBigUInt64LE(start + C.ssl.offset),
      fd: buf.readInt32LE(start + C.fd.offset),
      reason: connReason(reasonCode, buf[start + C.cookie.offset]!),
      calls: buf.readUInt32LE(start + C.seq.offset),
    };
    if (family === AF_INET || family === AF_INET6) {
      const format = family === AF_INET ? formatIpv4 : formatIpv6;
      decoded.local = { ip: format(buf, start + C.laddr.offset), port: buf.readUInt16LE(start + C.lport.offset) };
      decoded.remote = { ip: format(buf, start + C.raddr.offset), port: buf.readUInt16LE(start + C.rport.offset) };
    }
    this.out.conn(decoded);
  }
}
