// HTTP/1 header lines masked in place as the bytes go by: every line that starts with a credential
// header name has its value overwritten with '*', byte for byte, so lengths and offsets stay true.
import { isSensitiveHeader } from '../http/redact.js';
import { MASK_BYTE } from './types.js';
import type { RedactStats, StreamMasker } from './types.js';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const SEMI = 0x3b;
const EQ = 0x3d;
const MAX_NAME = 256;

/** RFC 9110 tchar: the bytes a header name is made of. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/**
 * Which parts of a value stay readable; the same parts `redactHeaderValue` shows (a test holds
 * them equal): Authorization's scheme, cookie names, Set-Cookie's attributes.
 */
type ValueKind = 'auth' | 'cookie' | 'set-cookie' | 'whole';

function kindOf(name: string): ValueKind {
  switch (name.toLowerCase()) {
    case 'authorization':
    case 'proxy-authorization':
      return 'auth';
    case 'cookie':
      return 'cookie';
    case 'set-cookie':
      return 'set-cookie';
    default:
      return 'whole';
  }
}

const enum State {
  LineStart,
  Name,
  Lead,
  Value,
  Skip,
  MaskLine,
}

/** Where in a value: the part before the first `=`/space that may be kept, the masked part, the kept tail. */
const enum Part {
  Start,
  Keep,
  Mask,
  Tail,
}

/**
 * The masker of one direction of an HTTP/1 (or any line-based) stream. It does not follow message
 * framing: a body line that starts like a credential header is masked too, which errs on the safe side.
 */
export class H1Masker implements StreamMasker {
  private state = State.LineStart;
  private name = '';
  private kind: ValueKind = 'whole';
  private part = Part.Start;
  private keepLeft = 0;
  /** The last header line was masked: a folded continuation line (obs-fold) is masked too. */
  private lastMasked = false;
  private counted = false;

  constructor(private readonly stats: RedactStats) {}

  gap(): void {
    // Where the missing bytes ended is unknown (maybe inside a credential header): mask to the end of the line.
    this.state = State.MaskLine;
  }

  feed(buf: Buffer, start: number, end: number): void {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case State.Skip: {
          const lf = buf.indexOf(LF, i);
          if (lf < 0 || lf >= end) return;
          i = lf + 1;
          this.state = State.LineStart;
          break;
        }
        case State.LineStart: {
          const c = buf[i]!;
          if (c === SP || c === HT) {
            this.state = this.lastMasked ? State.MaskLine : State.Skip;
            if (this.lastMasked) this.countValue();
          } else {
            this.lastMasked = false;
            this.name = '';
            this.state = State.Name;
          }
          break;
        }
        case State.Name: {
          const c = buf[i]!;
          if (c === COLON) {
            i++;
            if (this.name.length > 0 && isSensitiveHeader(this.name)) {
              this.kind = kindOf(this.name);
              this.part = Part.Start;
              this.counted = false;
              this.state = State.Lead;
            } else {
              this.state = State.Skip;
            }
          } else if (TCHAR[c] === 1 && this.name.length < MAX_NAME) {
            this.name += String.fromCharCode(c);
            i++;
          } else {
            this.state = c === LF ? State.LineStart : State.Skip;
            if (c === LF) i++;
          }
          break;
        }
        case State.Lead: {
          const c = buf[i]!;
          if (c === SP || c === HT) i++;
          else this.state = State.Value;
          break;
        }
        case State.Value:
          i = this.value(buf, i, end);
          break;
        case State.MaskLine: {
          const c = buf[i]!;
          if (c === LF) this.state = State.LineStart;
          else if (c !== CR) this.mask(buf, i);
          i++;
          break;
        }
      }
    }
  }

  /** One value byte at buf[i]; returns the next index. */
  private value(buf: Buffer, i: number, end: number): number {
    const c = buf[i]!;
    if (c === LF || c === CR) {
      if (c === LF) this.state = State.LineStart;
      this.lastMasked = true;
      return i + 1;
    }
    switch (this.part) {
      case Part.Start:
        this.part = this.keepable(buf, i, end) ? Part.Keep : Part.Mask;
        return i;
      case Part.Keep:
        if (--this.keepLeft === 0) this.part = Part.Mask;
        return i + 1;
      case Part.Mask:
        if (c === SEMI && this.kind !== 'auth' && this.kind !== 'whole') {
          // The next cookie pair (Cookie), or the attributes (Set-Cookie).
          this.part = this.kind === 'cookie' ? Part.Start : Part.Tail;
          return i + 1;
        }
        this.countValue();
        this.mask(buf, i);
        return i + 1;
      case Part.Tail:
        return i + 1;
    }
  }

  /**
   * Whether the value part starting at buf[i] has a head to keep, judged from the bytes at hand: the
   * scheme before a space (Authorization), the name before `=` (cookies). When the bytes at hand end
   * first, everything is masked: a kept byte can never be a secret.
   */
  private keepable(buf: Buffer, i: number, end: number): boolean {
    if (this.kind === 'whole') return false;
    const stop = this.kind === 'auth' ? SP : EQ;
    for (let j = i; j < end; j++) {
      const c = buf[j]!;
      if (c === stop) {
        this.keepLeft = j - i + 1;
        return true;
      }
      if (c === CR || c === LF || (c === SEMI && this.kind !== 'auth')) return false;
    }
    return false;
  }

  private countValue(): void {
    if (this.counted) return;
    this.counted = true;
    this.stats.values++;
  }

  private mask(buf: Buffer, i: number): void {
    buf[i] = MASK_BYTE;
    this.stats.bytes++;
  }
}
