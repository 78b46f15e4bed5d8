// --redact applied to the raw record batches, before anything reads them: the recorder, the decoder
// and so every output see the same masked bytes, at the same lengths and offsets.
import { EVENT_LAYOUT } from '../events/layout.js';
import { DirectionMasker } from './stream.js';
import { newRedactStats } from './types.js';
import type { RedactStats } from './types.js';

const D = EVENT_LAYOUT.data.fields;
const C = EVENT_LAYOUT.conn.fields;
const K = EVENT_LAYOUT.constants;
const DATA_HEADER = EVENT_LAYOUT.data.size;
/** Connections followed at once; the kernel tracks no more. */
const MAX_CONNS = K.MAX_CONNS;

/** One direction: its masker, and the call whose chunks are going by. */
interface Direction {
  masker: DirectionMasker;
  tid: number;
  tsNs: bigint;
  /** Offset in the call of the next chunk, and the bytes the kernel copied of it. */
  next: number;
  captured: number;
  /** Bytes of the call beyond --max-bytes: a gap once its captured bytes are through. */
  truncated: number;
  lastSeq: number;
}

interface Connection {
  pid: number;
  /** Highest call number seen, -1 before the first. */
  maxSeq: number;
  dirs: [Direction | undefined, Direction | undefined];
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}

/**
 * Masks credential headers inside the data records of batches, in place, following each direction
 * of each connection as one byte stream across calls and chunks. Bytes that cannot be placed in their
 * stream (a dropped call, a truncated one, chunks out of order) make the masker assume the worst
 * (see DirectionMasker and its maskers).
 */
export class BatchRedactor {
  readonly stats: RedactStats = newRedactStats();
  private readonly conns = new Map<number | string, Connection>();

  /** Masks one batch (`count` records framed [u32 LE length][record]) in place. */
  redactBatch(batch: Buffer, count: number): void {
    const present = this.callsIn(batch, count);
    forEachRecord(batch, count, (start, length) => {
      const kind = batch.readUInt32LE(start + D.kind.offset);
      if (kind === K.EVENT_DATA) this.data(batch, start, length, present);
      else if (kind === K.EVENT_CONN_CLOSE && length >= EVENT_LAYOUT.conn.size) this.conns.delete(readU64(batch, start + C.conn_id.offset));
      else if (kind === K.EVENT_PROCESS_EXIT && length >= EVENT_LAYOUT.conn.size) {
        const pid = batch.readUInt32LE(start + C.pid.offset);
        for (const [key, conn] of this.conns) if (conn.pid === pid) this.conns.delete(key);
      }
    });
  }

  /** The calls (connection id → call numbers) whose first chunk is in this batch. */
  private callsIn(batch: Buffer, count: number): Map<number, Set<number>> {
    const calls = new Map<number, Set<number>>();
    forEachRecord(batch, count, (start, length) => {
      if (length < DATA_HEADER || batch.readUInt32LE(start + D.kind.offset) !== K.EVENT_DATA) return;
      if (batch.readUInt32LE(start + D.chunk_offset.offset) !== 0) return;
      const id = readU64(batch, start + D.conn_id.offset);
      if (id === 0) return;
      let seqs = calls.get(id);
      if (seqs === undefined) calls.set(id, (seqs = new Set()));
      seqs.add(batch.readUInt32LE(start + D.seq.offset));
    });
    return calls;
  }

  private data(buf: Buffer, start: number, length: number, present: Map<number, Set<number>>): void {
    if (length < DATA_HEADER) return;
    const chunkLen = buf.readUInt32LE(start + D.chunk_len.offset);
    if (DATA_HEADER + chunkLen > length) return;
    const id = readU64(buf, start + D.conn_id.offset);
    const pid = buf.readUInt32LE(start + D.pid.offset);
    // A call without a connection (the kernel's table was full) is known by process and TLS object.
    const key = id !== 0 ? id : `${pid}:${buf.readBigUInt64LE(start + D.ssl.offset)}`;
    let conn = this.conns.get(key);
    if (conn === undefined) {
      if (this.conns.size >= MAX_CONNS) this.conns.delete(this.conns.keys().next().value!);
      conn = { pid, maxSeq: -1, dirs: [undefined, undefined] };
      this.conns.set(key, conn);
    }
    const which = buf[start + D.dir.offset] === K.DIR_WRITE ? 1 : 0;
    const dir = (conn.dirs[which] ??= {
      masker: new DirectionMasker(this.stats),
      tid: -1,
      tsNs: -1n,
      next: 0,
      captured: 0,
      truncated: 0,
      lastSeq: -1,
    });
    const tid = buf.readUInt32LE(start + D.tid.offset);
    const tsNs = buf.readBigUInt64LE(start + D.ts_ns.offset);
    if (tid !== dir.tid || tsNs !== dir.tsNs) {
      // A new call: the previous one must have been whole, and no call of this direction skipped.
      if (dir.next < dir.captured) dir.masker.gap();
      const seq = buf.readUInt32LE(start + D.seq.offset);
      if (id !== 0) {
        if (seq <= dir.lastSeq || this.skipped(conn, seq, present.get(id))) dir.masker.gap();
        conn.maxSeq = Math.max(conn.maxSeq, seq);
        dir.lastSeq = seq;
      }
      dir.tid = tid;
      dir.tsNs = tsNs;
      dir.next = 0;
      dir.truncated = buf.readUInt32LE(start + D.truncated.offset);
      dir.captured = buf.readUInt32LE(start + D.total_len.offset) - dir.truncated;
    }
    const offset = buf.readUInt32LE(start + D.chunk_offset.offset);
    if (offset > dir.next) dir.masker.gap();
    dir.masker.feed(buf, start + DATA_HEADER, start + DATA_HEADER + chunkLen);
    dir.next = Math.max(dir.next, offset + chunkLen);
    if (dir.next >= dir.captured && dir.truncated > 0) {
      dir.truncated = 0;
      dir.masker.gap();
    }
  }

  /**
   * Whether calls between the connection's highest number so far and `seq` are missing: not seen and
   * not in this batch (a call of the other direction may be written just after a later one).
   */
  private skipped(conn: Connection, seq: number, inBatch: Set<number> | undefined): boolean {
    for (let s = conn.maxSeq + 1; s < seq; s++) if (inBatch?.has(s) !== true) return true;
    return false;
  }
}

/** Calls fn(start, length) for each record of a batch; stops at a record that overruns it. */
function forEachRecord(batch: Buffer, count: number, fn: (start: number, length: number) => void): void {
  let pos = 0;
  for (let i = 0; i < count && pos + 4 <= batch.length; i++) {
    const length = batch.readUInt32LE(pos);
    const start = pos + 4;
    pos = start + length;
    if (pos > batch.length || length < D.kind.offset + 4) return;
    fn(start, length);
  }
}
