// CRC-32 as zlib computes it (IEEE 802.3, reflected): node:zlib's own where Node has it (20.15 and
// later), else the same sums from a table, so recordings read and write alike on Node 18.
import * as zlib from 'node:zlib';

/** zlib.crc32's signature: the CRC of `data`, continuing from `value` (0 to start). */
export type Crc32 = (data: Uint8Array | string, value?: number) => number;

let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** The table-driven CRC-32, for Node versions without zlib.crc32. */
export const crc32Table: Crc32 = (data, value = 0) => {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const t = crcTable();
  let c = ~value >>> 0;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
};

/** CRC-32 of `data`, continuing from `value`. */
export const crc32: Crc32 = (zlib as { crc32?: Crc32 }).crc32 ?? crc32Table;
