// What the stream maskers count, shared by every masker of a run.

/** Counts of what --redact masked in the byte streams. */
export interface RedactStats {
  /** Header values masked (HTTP/1 lines, HPACK literals). */
  values: number;
  /** Bytes overwritten in those values. */
  bytes: number;
  /** Bytes masked whole because the stream could not be followed (a gap, an undecodable header block). */
  blindBytes: number;
  /** Streams that went blind (masked whole from some point on). */
  blindStreams: number;
}

/** The byte a masked byte of plain text becomes. */
export const MASK_BYTE = 0x2a; // '*'

/** Fresh counters. */
export function newRedactStats(): RedactStats {
  return { values: 0, bytes: 0, blindBytes: 0, blindStreams: 0 };
}

/** One direction of a connection, as a masker sees it: bytes in order, and gaps. */
export interface StreamMasker {
  /** Masks buf[start, end) in place: the next bytes of the stream. */
  feed(buf: Buffer, start: number, end: number): void;
  /** Bytes of the stream are missing here (dropped, truncated, out of order). */
  gap(): void;
}
