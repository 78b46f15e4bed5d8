// Builds ring-buffer records and batches in the layout of bpf/tlstap.h, for unprivileged tests.
import { EVENT_LAYOUT } from '../../src/events/layout.js';

const D = EVENT_LAYOUT.data.fields;
const C = EVENT_LAYOUT.conn.fields;
const K = EVENT_LAYOUT.constants;

/** Fields of the header every record starts with. */
interface HeaderSpec {
  tsNs?: bigint;
  ssl?: bigint;
  fileIndex?: number;
  func?: number;
  connId?: number;
  kind?: number;
  pid?: number;
  tid?: number;
  uid?: number;
  comm?: string;
}

/** The fields of one data record; omitted ones get plain defaults. */
export interface RecordSpec extends HeaderSpec {
  totalLen?: number;
  truncated?: number;
  chunkOffset?: number;
  seq?: number;
  fd?: number;
  dir?: number;
  flags?: number;
  data: Buffer;
}

/** The fields of one connection record. */
export interface ConnSpec extends HeaderSpec {
  kind: number;
  fd?: number;
  /** 2 (AF_INET) or 10 (AF_INET6); 0 for unknown addresses. */
  family?: number;
  laddr?: Buffer;
  raddr?: Buffer;
  lport?: number;
  rport?: number;
  reason?: number;
  seq?: number;
}

function writeHeader(rec: Buffer, spec: HeaderSpec, kind: number): void {
  rec.writeBigUInt64LE(spec.tsNs ?? 1000n, D.ts_ns.offset);
  rec.writeBigUInt64LE(spec.ssl ?? 0x5555n, D.ssl.offset);
  rec.writeBigUInt64LE((BigInt(spec.fileIndex ?? 0) << 8n) | BigInt(spec.func ?? 1), D.cookie.offset);
  rec.writeBigUInt64LE(BigInt(spec.connId ?? 1), D.conn_id.offset);
  rec.writeUInt32LE(kind, D.kind.offset);
  rec.writeUInt32LE(spec.pid ?? 42, D.pid.offset);
  rec.writeUInt32LE(spec.tid ?? spec.pid ?? 42, D.tid.offset);
  rec.writeUInt32LE(spec.uid ?? 0, D.uid.offset);
  rec.write(spec.comm ?? 'curl', D.comm.offset, D.comm.size, 'utf8');
}

/** One data record as the BPF program writes it. */
export function encodeRecord(spec: RecordSpec): Buffer {
  const rec = Buffer.alloc(EVENT_LAYOUT.data.size + spec.data.length);
  writeHeader(rec, spec, spec.kind ?? K.EVENT_DATA);
  rec.writeUInt32LE(spec.totalLen ?? spec.data.length, D.total_len.offset);
  rec.writeUInt32LE(spec.truncated ?? 0, D.truncated.offset);
  rec.writeUInt32LE(spec.chunkOffset ?? 0, D.chunk_offset.offset);
  rec.writeUInt32LE(spec.data.length, D.chunk_len.offset);
  rec.writeUInt32LE(spec.seq ?? 0, D.seq.offset);
  rec.writeInt32LE(spec.fd ?? -1, D.fd.offset);
  rec[D.func.offset] = spec.func ?? 1;
  rec[D.dir.offset] = spec.dir ?? ((spec.func ?? 1) % 2 === 1 ? K.DIR_WRITE : K.DIR_READ);
  rec[D.flags.offset] = spec.flags ?? 0;
  spec.data.copy(rec, EVENT_LAYOUT.data.size);
  return rec;
}

/** One connection record (open, fd learnt, close). */
export function encodeConnRecord(spec: ConnSpec): Buffer {
  const rec = Buffer.alloc(EVENT_LAYOUT.conn.size);
  writeHeader(rec, spec, spec.kind);
  rec.writeInt32LE(spec.fd ?? -1, C.fd.offset);
  rec.writeUInt16LE(spec.family ?? 0, C.family.offset);
  rec.writeUInt16LE(spec.lport ?? 0, C.lport.offset);
  rec.writeUInt16LE(spec.rport ?? 0, C.rport.offset);
  rec[C.reason.offset] = spec.reason ?? (spec.family ? K.REASON_NONE : K.REASON_NO_FD);
  rec.writeUInt32LE(spec.seq ?? 0, C.seq.offset);
  spec.laddr?.copy(rec, C.laddr.offset);
  spec.raddr?.copy(rec, C.raddr.offset);
  return rec;
}

/** Records framed as a native batch: [u32 LE length][record]... */
export function encodeBatchOf(records: readonly Buffer[]): { batch: Buffer; count: number } {
  const parts: Buffer[] = [];
  for (const r of records) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(r.length);
    parts.push(len, r);
  }
  return { batch: Buffer.concat(parts), count: records.length };
}

/** A call's payload split into chunk records of `chunk` bytes, as the kernel would send it. */
export function chunkRecords(spec: Omit<RecordSpec, 'chunkOffset'>, chunk: number): Buffer[] {
  const out: Buffer[] = [];
  const captured = spec.data.length;
  for (let off = 0; off < captured; off += chunk) {
    out.push(encodeRecord({ ...spec, totalLen: spec.totalLen ?? captured, chunkOffset: off, data: spec.data.subarray(off, off + chunk) }));
  }
  return out;
}
