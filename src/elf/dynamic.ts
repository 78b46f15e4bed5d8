import { DT_NEEDED, DT_NULL, DT_STRSZ, DT_STRTAB, DYN_SIZE } from './constants.js';
import { Decoder } from './reader.js';

/** One .dynamic entry; d_tag is read unsigned (the tags we use are small). */
export interface DynamicEntry {
  tag: bigint;
  value: bigint;
}

/** Decodes .dynamic entries up to DT_NULL or the end of `buf`. */
export function parseDynamic(buf: Buffer, littleEndian: boolean, bits: 32 | 64): DynamicEntry[] {
  const d = new Decoder(buf, littleEndian, bits);
  const size = DYN_SIZE[bits];
  const entries: DynamicEntry[] = [];
  for (let at = 0; at + size <= buf.length; at += size) {
    const tag = d.word(at);
    if (tag === BigInt(DT_NULL)) break;
    entries.push({ tag, value: d.word(at + size / 2) });
  }
  return entries;
}

/** String table offsets of the DT_NEEDED entries, in order. */
export function neededOffsets(entries: readonly DynamicEntry[]): bigint[] {
  return entries.filter((e) => e.tag === BigInt(DT_NEEDED)).map((e) => e.value);
}

/** DT_STRTAB (an address) and DT_STRSZ, for files without section headers. */
export function dynamicStringTable(entries: readonly DynamicEntry[]): { address: bigint; size: bigint } | undefined {
  const address = entries.find((e) => e.tag === BigInt(DT_STRTAB))?.value;
  const size = entries.find((e) => e.tag === BigInt(DT_STRSZ))?.value;
  return address === undefined || size === undefined ? undefined : { address, size };
}
