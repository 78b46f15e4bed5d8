// JSON records that carry message bodies (HAR entries, jsonl `http` lines), written without making
// a string of any body: the record is serialised with a stand-in for each body, and the body's
// bytes are escaped (text) or base64-encoded straight into the output, a slice at a time, byte
// for byte what JSON.stringify of the whole string would have written. A 16 MiB body then costs
// its encoded bytes in the output batch, not three strings and a buffer three times their size.

import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import type { BodyStrings } from '../http/body.js';
import type { ByteTarget } from './batch.js';
import { Base64Encoder } from './base64.js';
import { JsonEscaper } from './json-escape.js';

/** Body bytes encoded per kernel call: the kernels' memory stays small (a multiple of 3 for base64). */
const SLICE = 48 * 1024;
/**
 * Stand-ins start and end with a lone surrogate, which JSON.stringify writes as `\udc00` and which
 * no captured string holds (bytes are decoded as UTF-8 or latin-1); the writer's random tag and
 * the body's index make each one unique.
 */
const MARK = '\udc00';
const MARK_JSON = '\\udc00';

interface HeldBody {
  bytes: Buffer;
  base64: boolean;
}

/**
 * Writes JSON records whose body strings were made by its `strings`: each stand-in in the
 * serialised record is replaced by its body's bytes, encoded into the target.
 */
export class BodyJsonWriter {
  /** Give these to the record builder (harEntry, httpRecord); then write() the record. */
  readonly strings: BodyStrings;
  private readonly tag = randomBytes(6).toString('hex');
  /** `"\udc00TAG:` as JSON.stringify writes the start of a stand-in. */
  private readonly open = `"${MARK_JSON}${this.tag}:`;
  private held: HeldBody[] = [];
  private escaper: JsonEscaper | undefined;
  private base64: Base64Encoder | undefined;

  constructor() {
    this.strings = { text: (bytes) => this.hold(bytes, false), base64: (bytes) => this.hold(bytes, true) };
  }

  private hold(bytes: Buffer, base64: boolean): string {
    this.held.push({ bytes, base64 });
    return `${MARK}${this.tag}:${this.held.length - 1}${MARK}`;
  }

  /** Appends `prefix`, JSON.stringify(value) with every held body in its place, and `suffix`. */
  write(value: unknown, target: ByteTarget, prefix = '', suffix = ''): void {
    const held = this.held;
    this.held = [];
    const json = prefix + JSON.stringify(value) + suffix;
    let from = 0;
    for (let at = json.indexOf(this.open); at >= 0; at = json.indexOf(this.open, from)) {
      const end = json.indexOf(`${MARK_JSON}"`, at + this.open.length);
      const body = held[Number(json.slice(at + this.open.length, end))];
      if (end < 0 || body === undefined) throw new Error('BodyJsonWriter: a body stand-in without its body');
      // Up to and with the opening quote; the body; the closing quote comes with the next piece.
      target.writeString(json.slice(from, at + 1));
      this.putBody(body, target);
      from = end + MARK_JSON.length;
    }
    target.writeString(from === 0 ? json : json.slice(from));
  }

  /** The inside of the JSON string of a body: base64, or its UTF-8 text escaped. */
  private putBody(body: HeldBody, target: ByteTarget): void {
    const bytes = body.bytes;
    if (body.base64) {
      this.base64 ??= new Base64Encoder();
      for (let i = 0; i < bytes.length; i += SLICE) {
        this.base64.append(bytes.subarray(i, i + SLICE), target);
        target.writeOutIfFull?.();
      }
      return;
    }
    // A text body may end inside a character (a cut body): that tail is decoded as toString does.
    const valid = validUtf8Length(bytes);
    this.escaper ??= new JsonEscaper();
    for (let i = 0; i < valid; i += SLICE) {
      this.escaper.append(bytes.subarray(i, Math.min(i + SLICE, valid)), target);
      target.writeOutIfFull?.();
    }
    if (valid < bytes.length) target.writeString(JSON.stringify(bytes.subarray(valid).toString('utf8')).slice(1, -1));
  }
}

/** The length of the longest valid UTF-8 prefix among the whole and the whole less 1-3 bytes; 0 if none. */
function validUtf8Length(bytes: Buffer): number {
  for (let cut = 0; cut <= 3 && cut <= bytes.length; cut++) {
    if (isUtf8(bytes.subarray(0, bytes.length - cut))) return bytes.length - cut;
  }
  return 0;
}
