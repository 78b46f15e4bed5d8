import { EVENT_LAYOUT } from './layout.js';
import { TLS_FUNCTIONS } from './types.js';
import type { TlsCall } from './types.js';

const F = EVENT_LAYOUT.fields;
const HEADER = EVENT_LAYOUT.headerSize;
const COMM_LEN = EVENT_LAYOUT.constants.COMM_LEN;
const EVENT_DATA = EVENT_LAYOUT.constants.EVENT_DATA;

/** A call whose chunks are still arriving (they share tid and ts_ns). */
interface PendingCall {
  call: TlsCall;
  chunks: Buffer[];
  /** Offset within the call where the next chunk should start. */
  next: number;
  /** Bytes of the call the kernel copied (total minus truncated). */
  captured: number;
}

/** Counts of what the assembler saw that was not a whole call. */
export interface AssemblerStats {
  /** Records of a kind this version does not know (newer BPF program?). */
  unknownRecords: number;
  /** Records shorter than their header says. */
  malformedRecords: number;
}

/**
 * Turns batches of ring-buffer records into whole calls: single-chunk calls are emitted
 * straight from the batch (no copy); multi-chunk calls are joined, and any chunk missing
 * from the middle or end (ring buffer full) is counted in the call's `lost`.
 */
export class CallAssembler {
  private readonly pending = new Map<number, PendingCall>();
  readonly stats: AssemblerStats = { unknownRecords: 0, malformedRecords: 0 };

  constructor(private readonly emit: (call: TlsCall) => void) {}

  /** Consumes one batch: `count` records framed as [u32 LE length][record]. */
  pushBatch(batch: Buffer, count: number): void {
    let pos = 0;
    for (let i = 0; i < count && pos + 4 <= batch.length; i++) {
      const length = batch.readUInt32LE(pos);
      const start = pos + 4;
      pos = start + length;
      if (pos > batch.length || length < HEADER) {
        this.stats.malformedRecords++;
        return;
      }
      this.pushRecord(batch, start, length);
    }
  }

  /** Consumes one record at batch[start, start+length). */
  pushRecord(buf: Buffer, start: number, length: number): void {
    if (buf.readUInt32LE(start + F.kind.offset) !== EVENT_DATA) {
      this.stats.unknownRecords++;
      return;
    }
    const chunkLen = buf.readUInt32LE(start + F.chunk_len.offset);
    if (HEADER + chunkLen > length) {
      this.stats.malformedRecords++;
      return;
    }
    const tid = buf.readUInt32LE(start + F.tid.offset);
    const tsNs = buf.readBigUInt64LE(start + F.ts_ns.offset);
    const offset = buf.readUInt32LE(start + F.chunk_offset.offset);
    const totalLen = buf.readUInt32LE(start + F.total_len.offset);
    const truncated = buf.readUInt32LE(start + F.truncated.offset);
    const data = buf.subarray(start + HEADER, start + HEADER + chunkLen);
    const captured = totalLen - truncated;

    let pending = this.pending.get(tid);
    if (pending && pending.call.tsNs !== tsNs) {
      this.finish(tid, pending);
      pending = undefined;
    }
    if (!pending) {
      if (offset === 0 && chunkLen >= captured) {
        this.emit(this.decodeCall(buf, start, tid, tsNs, data, 0));
        return;
      }
      pending = { call: this.decodeCall(buf, start, tid, tsNs, data, offset), chunks: [], next: offset, captured };
      this.pending.set(tid, pending);
    } else if (offset > pending.next) {
      pending.call.lost += offset - pending.next;
    }
    pending.chunks.push(data);
    pending.next = offset + chunkLen;
    if (pending.next >= captured) this.finish(tid, pending);
  }

  /** Emits every call still waiting for chunks, counting what never came as lost. */
  flush(): void {
    for (const [tid, pending] of this.pending) this.finish(tid, pending);
  }

  private finish(tid: number, pending: PendingCall): void {
    this.pending.delete(tid);
    const call = pending.call;
    if (pending.next < pending.captured) call.lost += pending.captured - pending.next;
    call.data = pending.chunks.length === 1 ? pending.chunks[0]! : Buffer.concat(pending.chunks);
    this.emit(call);
  }

  private decodeCall(buf: Buffer, start: number, tid: number, tsNs: bigint, data: Buffer, lostAtStart: number): TlsCall {
    const func = buf[start + F.func.offset]!;
    const cookie = buf.readBigUInt64LE(start + F.cookie.offset);
    const commStart = start + F.comm.offset;
    let commEnd = buf.indexOf(0, commStart);
    if (commEnd < 0 || commEnd > commStart + COMM_LEN) commEnd = commStart + COMM_LEN;
    return {
      tsNs,
      pid: buf.readUInt32LE(start + F.pid.offset),
      tid,
      uid: buf.readUInt32LE(start + F.uid.offset),
      comm: buf.toString('utf8', commStart, commEnd),
      func: TLS_FUNCTIONS[func] ?? TLS_FUNCTIONS[0],
      dir: buf[start + F.dir.offset] === EVENT_LAYOUT.constants.DIR_WRITE ? 'write' : 'read',
      ssl: buf.readBigUInt64LE(start + F.ssl.offset),
      fileIndex: Number(cookie >> 8n),
      totalLen: buf.readUInt32LE(start + F.total_len.offset),
      data,
      truncated: buf.readUInt32LE(start + F.truncated.offset),
      lost: lostAtStart,
    };
  }
}
