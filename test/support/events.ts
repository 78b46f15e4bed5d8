// Builds ring-buffer records and batches in the layout of bpf/tlstap.h, for unprivileged tests.
import { EVENT_LAYOUT } from '../../src/events/layout.js';

const F = EVENT_LAYOUT.fields;

/** The fields of one record; omitted ones get plain defaults. */
export interface RecordSpec {
  tsNs?: bigint;
  ssl?: bigint;
  fileIndex?: number;
  func?: number;
  kind?: number;
  pid?: number;
  tid?: number;
  uid?: number;
  totalLen?: number;
  truncated?: number;
  chunkOffset?: number;
  dir?: number;
  comm?: string;
  data: Buffer;
}

/** One record as the BPF program writes it. */
export function encodeRecord(spec: RecordSpec): Buffer {
  const rec = Buffer.alloc(EVENT_LAYOUT.headerSize + spec.data.length);
  rec.writeBigUInt64LE(spec.tsNs ?? 1000n, F.ts_ns.offset);
  rec.writeBigUInt64LE(spec.ssl ?? 0x5555n, F.ssl.offset);
  rec.writeBigUInt64LE((BigInt(spec.fileIndex ?? 0) << 8n) | BigInt(spec.func ?? 1), F.cookie.offset);
  rec.writeUInt32LE(spec.kind ?? EVENT_LAYOUT.constants.EVENT_DATA, F.kind.offset);
  rec.writeUInt32LE(spec.pid ?? 42, F.pid.offset);
  rec.writeUInt32LE(spec.tid ?? spec.pid ?? 42, F.tid.offset);
  rec.writeUInt32LE(spec.uid ?? 0, F.uid.offset);
  rec.writeUInt32LE(spec.totalLen ?? spec.data.length, F.total_len.offset);
  rec.writeUInt32LE(spec.truncated ?? 0, F.truncated.offset);
  rec.writeUInt32LE(spec.chunkOffset ?? 0, F.chunk_offset.offset);
  rec.writeUInt32LE(spec.data.length, F.chunk_len.offset);
  rec[F.func.offset] = spec.func ?? 1;
  rec[F.dir.offset] = spec.dir ?? ((spec.func ?? 1) % 2 === 1 ? 1 : 0);
  rec.write(spec.comm ?? 'curl', F.comm.offset, F.comm.size, 'utf8');
  spec.data.copy(rec, EVENT_LAYOUT.headerSize);
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
