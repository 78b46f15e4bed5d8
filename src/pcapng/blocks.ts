// pcapng block encoding, written from draft-ietf-opsawg-pcapng. Every block is little-endian (the
// Section Header's byte-order magic says so to readers) and laid out as
//   block type (u32) | block total length (u32) | body | block total length (u32)
// with the body padded to 32 bits. Options are TLV records — code (u16), length (u16), value
// padded to 32 bits — closed by opt_endofopt (code 0, length 0).

import type { ByteTarget } from '../output/batch.js';
import { putBytes, putU16LE, putU32LE } from '../output/bytes.js';

/** Section Header Block type; a palindrome so it reads the same in either byte order. */
export const SHB_TYPE = 0x0a0d0d0a;
/** Interface Description Block type. */
export const IDB_TYPE = 0x00000001;
/** Enhanced Packet Block type. */
export const EPB_TYPE = 0x00000006;
/** Byte-order magic of the Section Header Block. */
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** LINKTYPE_RAW: packets start with an IPv4 or IPv6 header (version nibble tells which). */
export const LINKTYPE_RAW = 101;

/** Option codes used by tlstap (the spec's names). */
export const OPT = {
  endofopt: 0,
  comment: 1,
  shb_hardware: 2,
  shb_os: 3,
  shb_userappl: 4,
  if_name: 2,
  if_description: 3,
  if_tsresol: 9,
  epb_flags: 2,
} as const;

/** epb_flags bits 0-1: the direction of a packet. */
export const EPB_INBOUND = 0b01;
/** epb_flags bits 0-1: outbound. */
export const EPB_OUTBOUND = 0b10;
/** epb_flags bits 2-4: reception type 1 = unicast (our synthesized packets always are). */
export const EPB_UNICAST = 0b001 << 2;

/** One option of a block: a code and its raw value (strings are UTF-8, never NUL-terminated). */
export interface BlockOption {
  code: number;
  value: Buffer;
}

/** Rounds n up to a multiple of 4. */
export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Bytes an option list takes, end-of-options included (0 when there are no options). */
export function optionsLength(options: readonly BlockOption[]): number {
  if (options.length === 0) return 0;
  let n = 4;
  for (const o of options) n += 4 + pad4(o.value.length);
  return n;
}

/** Writes options and opt_endofopt at `off` (zero padding included); returns the end offset. */
export function writeOptions(buf: Buffer, off: number, options: readonly BlockOption[]): number {
  if (options.length === 0) return off;
  for (const o of options) {
    if (o.value.length > 0xffff) throw new RangeError(`pcapng option ${o.code} is longer than 65535 bytes`);
    buf.writeUInt16LE(o.code, off);
    buf.writeUInt16LE(o.value.length, off + 2);
    o.value.copy(buf, off + 4);
    const end = off + 4 + o.value.length;
    off += 4 + pad4(o.value.length);
    buf.fill(0, end, off);
  }
  buf.writeUInt32LE(0, off); // opt_endofopt: code 0, length 0
  return off + 4;
}

/** A UTF-8 string option. */
export function stringOption(code: number, text: string): BlockOption {
  return { code, value: Buffer.from(text, 'utf8') };
}

/** A block with the given type and body; the body's length must be a multiple of 4. */
function block(type: number, body: Buffer): Buffer {
  if (body.length % 4 !== 0) throw new RangeError('pcapng block body must be 32-bit aligned');
  const total = 12 + body.length;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  body.copy(out, 8);
  out.writeUInt32LE(total, total - 4);
  return out;
}

/** What goes into the Section Header Block. */
export interface SectionHeader {
  /** shb_userappl, e.g. `tlstap 0.1.0`. */
  userAppl: string;
  /** shb_os, e.g. `Linux 6.1.0-18-amd64`. */
  os: string;
  /** shb_hardware, e.g. `x64`. */
  hardware: string;
  /** opt_comment on the section, if any. */
  comment?: string;
}

/** A Section Header Block: version 1.0, section length -1 (not known while writing a stream). */
export function encodeSectionHeader(h: SectionHeader): Buffer {
  const options: BlockOption[] = [];
  if (h.comment !== undefined) options.push(stringOption(OPT.comment, h.comment));
  options.push(stringOption(OPT.shb_hardware, h.hardware));
  options.push(stringOption(OPT.shb_os, h.os));
  options.push(stringOption(OPT.shb_userappl, h.userAppl));
  const body = Buffer.alloc(16 + optionsLength(options));
  body.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  body.writeUInt16LE(1, 4); // major version
  body.writeUInt16LE(0, 6); // minor version
  body.writeBigInt64LE(-1n, 8); // section length: unspecified
  writeOptions(body, 16, options);
  return block(SHB_TYPE, body);
}

/** What goes into an Interface Description Block. */
export interface InterfaceDescription {
  linkType: number;
  /** Longest captured packet; 0 means no limit. */
  snapLen: number;
  /** if_name. */
  name: string;
  /** if_description, if any. */
  description?: string;
  /** if_tsresol: timestamps count 10^-tsresol seconds (9: nanoseconds). */
  tsresol: number;
}

/** An Interface Description Block; interfaces are numbered 0, 1, ... in the order written. */
export function encodeInterfaceDescription(d: InterfaceDescription): Buffer {
  const options: BlockOption[] = [stringOption(OPT.if_name, d.name)];
  if (d.description !== undefined) options.push(stringOption(OPT.if_description, d.description));
  options.push({ code: OPT.if_tsresol, value: Buffer.from([d.tsresol]) });
  const body = Buffer.alloc(8 + optionsLength(options));
  body.writeUInt16LE(d.linkType, 0);
  body.writeUInt16LE(0, 2); // reserved
  body.writeUInt32LE(d.snapLen, 4);
  writeOptions(body, 8, options);
  return block(IDB_TYPE, body);
}

/** Fixed part of an Enhanced Packet Block before the packet data: type ... original length. */
const EPB_HEAD = 28;

/** Bytes an Enhanced Packet Block takes for a packet of `packetLen` and a comment of `commentLen`. */
export function enhancedPacketLength(packetLen: number, commentLen: number): number {
  // epb_flags (4 + 4), the comment (4 + padded), opt_endofopt (4), trailing length (4).
  return EPB_HEAD + pad4(packetLen) + 8 + (commentLen > 0 ? 4 + pad4(commentLen) : 0) + 4 + 4;
}

/** The per-packet fields of an Enhanced Packet Block. */
export interface EnhancedPacket {
  interfaceId: number;
  /** Timestamp in units of the interface's if_tsresol (nanoseconds for tlstap). */
  timestamp: bigint;
  /** epb_flags value (direction and reception type bits). */
  flags: number;
  /** opt_comment as UTF-8, or an empty buffer for none. */
  comment: Buffer;
}

/** Zeroes the at most 3 padding bytes buf[start, end): a loop is quicker than Buffer.fill for so few. */
function zeroPad(buf: Buffer, start: number, end: number): void {
  for (let i = start; i < end; i++) buf[i] = 0;
}

/** Scratch space for splitting a timestamp into its 32-bit halves; nothing stays in it between calls. */
const timestampSplit = new DataView(new ArrayBuffer(8));

/**
 * Writes a 64-bit timestamp as the EPB wants it: the high 32 bits first, each half little-endian.
 * One store of the bigint into scratch space, no bigint arithmetic (each >> or & makes a new bigint).
 */
function putTimestamp(buf: Buffer, at: number, timestamp: bigint): void {
  // setBigUint64 takes the value modulo 2^64, as a u64 field must.
  timestampSplit.setBigUint64(0, timestamp, true);
  putU32LE(buf, at, timestampSplit.getUint32(4, true));
  putU32LE(buf, at + 4, timestampSplit.getUint32(0, true));
}

/**
 * Appends one Enhanced Packet Block to `target` in a single reserved stretch, so a block never
 * straddles two writes. `fill` writes exactly `packetLen` packet bytes at `off` of `buf`.
 */
export function writeEnhancedPacket(
  target: ByteTarget,
  p: EnhancedPacket,
  packetLen: number,
  fill: (buf: Buffer, off: number) => void,
): number {
  const commentLen = p.comment.length;
  if (commentLen > 0xffff) throw new RangeError('pcapng comment is longer than 65535 bytes');
  const total = enhancedPacketLength(packetLen, commentLen);
  target.reserve(total);
  const buf = target.buf;
  const start = target.pos;
  putU32LE(buf, start, EPB_TYPE);
  putU32LE(buf, start + 4, total);
  putU32LE(buf, start + 8, p.interfaceId);
  putTimestamp(buf, start + 12, p.timestamp);
  putU32LE(buf, start + 20, packetLen); // captured length
  putU32LE(buf, start + 24, packetLen); // original length
  let off = start + EPB_HEAD;
  fill(buf, off);
  off += packetLen;
  const padded = start + EPB_HEAD + pad4(packetLen);
  zeroPad(buf, off, padded);
  off = padded;
  putU16LE(buf, off, OPT.epb_flags);
  putU16LE(buf, off + 2, 4);
  putU32LE(buf, off + 4, p.flags >>> 0);
  off += 8;
  if (commentLen > 0) {
    putU16LE(buf, off, OPT.comment);
    putU16LE(buf, off + 2, commentLen);
    putBytes(buf, off + 4, p.comment);
    const end = off + 4 + commentLen;
    off += 4 + pad4(commentLen);
    zeroPad(buf, end, off);
  }
  putU32LE(buf, off, 0); // opt_endofopt
  putU32LE(buf, off + 4, total);
  target.pos = start + total;
  return total;
}
