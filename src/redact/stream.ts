// One direction of a connection: told apart as HTTP/2 or line-based from its first bytes, then
// handed to the masker for that.
import { H1Masker } from './h1.js';
import { FRAME_HEADER, H2Masker, H2_PREFACE } from './h2.js';
import { MASK_BYTE } from './types.js';
import type { RedactStats, StreamMasker } from './types.js';

/** Highest frame type of RFC 9113; a larger byte at offset 3 means the stream is not HTTP/2 frames. */
const MAX_FRAME_TYPE = 0x9;
const SETTINGS = 0x4;

/**
 * Masks one direction: its first bytes say which protocol it carries. The client preface, or a frame
 * header (type 0..9, reserved bit clear) make it HTTP/2, with the HPACK table known when the first
 * frame is the SETTINGS every connection starts with; anything else is masked line by line (HTTP/1).
 * The few bytes that decide are not masked: no header value can be among them.
 */
export class DirectionMasker implements StreamMasker {
  private inner: StreamMasker | undefined;
  private readonly seen = Buffer.alloc(H2_PREFACE.length);
  private seenLen = 0;

  constructor(private readonly stats: RedactStats) {}

  feed(buf: Buffer, start: number, end: number): void {
    let i = start;
    while (this.inner === undefined && i < end) {
      this.seen[this.seenLen++] = buf[i++]!;
      this.decide();
    }
    if (this.inner !== undefined && i < end) this.inner.feed(buf, i, end);
  }

  gap(): void {
    // Before its first bytes were seen the protocol is unknown: the rest of the direction is masked whole.
    this.inner ??= new BlindMasker(this.stats);
    this.inner.gap();
  }

  private decide(): void {
    const n = this.seenLen;
    const s = this.seen;
    const preface = s.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    const frame = (n < 4 || s[3]! <= MAX_FRAME_TYPE) && (n < 6 || (s[5]! & 0x80) === 0);
    if (preface && n === H2_PREFACE.length) {
      this.inner = new H2Masker(this.stats, { preface: false, tableKnown: true });
    } else if (!preface && frame && n === FRAME_HEADER) {
      const fresh = s[3] === SETTINGS && s[4] === 0 && s.readUInt32BE(5) === 0;
      const h2 = new H2Masker(this.stats, { preface: false, tableKnown: fresh });
      h2.feed(Buffer.from(s.subarray(0, n)), 0, n);
      this.inner = h2;
    } else if (!preface && !frame) {
      const h1 = new H1Masker(this.stats);
      h1.feed(Buffer.from(s.subarray(0, n)), 0, n);
      this.inner = h1;
    }
  }
}

/** A direction that cannot be followed: every byte is masked. */
class BlindMasker implements StreamMasker {
  constructor(private readonly stats: RedactStats) {
    stats.blindStreams++;
  }

  feed(buf: Buffer, start: number, end: number): void {
    buf.fill(MASK_BYTE, start, end);
    this.stats.blindBytes += end - start;
  }

  gap(): void {}
}
