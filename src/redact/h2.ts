// HTTP/2 frames (RFC 9113) followed as their bytes go by, so that the header block fragments of
// HEADERS, PUSH_PROMISE and CONTINUATION frames reach the HPACK masker and nothing else does.
import { HpackMasker } from './hpack.js';
import { MASK_BYTE } from './types.js';
import type { RedactStats, StreamMasker } from './types.js';

/** The client connection preface. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Bytes of a frame header. */
export const FRAME_HEADER = 9;

const HEADERS = 0x1;
const PUSH_PROMISE = 0x5;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

const enum Phase {
  Preface,
  Head,
  PadLength,
  Skip,
  Fragment,
  Padding,
}

/**
 * The masker of one direction of an HTTP/2 connection. A gap in the bytes loses the frame layout:
 * from then on the direction is masked whole.
 */
export class H2Masker implements StreamMasker {
  private phase: Phase;
  private left: number;
  private readonly head = Buffer.alloc(FRAME_HEADER);
  private headLen = 0;
  private type = 0;
  private flags = 0;
  /** Bytes of the current frame's payload not yet consumed. */
  private payload = 0;
  private padding = 0;
  /** Skip bytes before the fragment (promised stream id, priority). */
  private before = 0;
  private readonly hpack: HpackMasker;
  private blind = false;

  /** `preface`: the stream starts with the client preface; else with a frame header. */
  constructor(
    private readonly stats: RedactStats,
    opts: { preface: boolean; tableKnown: boolean },
  ) {
    this.hpack = new HpackMasker(stats, opts.tableKnown);
    this.phase = opts.preface ? Phase.Preface : Phase.Head;
    this.left = opts.preface ? H2_PREFACE.length : 0;
  }

  gap(): void {
    if (!this.blind) this.stats.blindStreams++;
    this.blind = true;
  }

  feed(buf: Buffer, start: number, end: number): void {
    let i = start;
    if (this.blind) {
      buf.fill(MASK_BYTE, i, end);
      this.stats.blindBytes += end - i;
      return;
    }
    while (i < end) {
      const n = Math.min(this.left, end - i);
      switch (this.phase) {
        case Phase.Preface:
          i += n;
          this.left -= n;
          if (this.left === 0) this.startHead();
          break;
        case Phase.Head:
          this.head[this.headLen++] = buf[i++]!;
          if (this.headLen === FRAME_HEADER) this.startPayload();
          break;
        case Phase.PadLength:
          this.padding = buf[i++]!;
          this.payload--;
          this.startBefore();
          break;
        case Phase.Skip:
        case Phase.Fragment: {
          const fragment = this.phase === Phase.Fragment;
          if (fragment) this.hpack.feed(buf, i, i + n);
          i += n;
          this.left -= n;
          this.payload -= n;
          if (this.left === 0) {
            if (fragment) this.afterFragment();
            else this.afterSkip();
          }
          break;
        }
        case Phase.Padding:
          i += n;
          this.left -= n;
          if (this.left === 0) this.startHead();
          break;
      }
      if (this.blind) {
        buf.fill(MASK_BYTE, i, end);
        this.stats.blindBytes += end - i;
        return;
      }
    }
  }

  private startHead(): void {
    this.phase = Phase.Head;
    this.headLen = 0;
    this.left = FRAME_HEADER;
  }

  private startPayload(): void {
    const h = this.head;
    this.payload = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
    this.type = h[3]!;
    this.flags = h[4]!;
    this.padding = 0;
    const carriesBlock = this.type === HEADERS || this.type === PUSH_PROMISE || this.type === CONTINUATION;
    if (!carriesBlock) {
      this.before = 0;
      this.skip(this.payload, false);
      return;
    }
    this.before = this.type === PUSH_PROMISE ? 4 : this.type === HEADERS && this.flags & PRIORITY ? 5 : 0;
    if (this.type !== CONTINUATION && this.flags & PADDED) {
      if (this.payload === 0) return this.gap();
      this.phase = Phase.PadLength;
      this.left = 1;
      return;
    }
    this.startBefore();
  }

  private startBefore(): void {
    if (this.before > 0) this.skip(this.before, true);
    else this.startFragment();
  }

  /** Skips `n` payload bytes: a whole frame that carries no header block, or the bytes before a fragment. */
  private skip(n: number, beforeFragment: boolean): void {
    this.phase = Phase.Skip;
    this.left = n;
    this.before = beforeFragment ? -1 : 0;
    if (n === 0) this.afterSkip();
  }

  private afterSkip(): void {
    if (this.before === -1) this.startFragment();
    else this.startHead();
  }

  private startFragment(): void {
    const length = this.payload - this.padding;
    if (length < 0) return this.gap();
    this.phase = Phase.Fragment;
    this.left = length;
    if (length === 0) this.afterFragment();
  }

  private afterFragment(): void {
    if (this.flags & END_HEADERS) this.hpack.endBlock();
    this.phase = Phase.Padding;
    this.left = this.padding;
    if (this.left === 0) this.startHead();
  }
}
