// Content decoding for display (gzip, deflate, br) and telling text bodies from binary ones.

import { isUtf8 } from 'node:buffer';
import { brotliDecompressSync, constants, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { headerValue } from './message.js';
import type { HttpBody, HttpHeader } from './types.js';

/** A body after content decoding, ready to show. */
export interface DecodedBody {
  /** The decoded bytes (the body itself when there was nothing to decode or decoding failed). */
  bytes: Buffer;
  /** The Content-Encoding that was undone, e.g. `gzip`; undefined when none was. */
  encoding?: string;
  /** Why the bytes are shown as sent, or that the decoded output is partial. */
  note?: string;
  /** Whether the bytes are text (UTF-8 without NUL bytes). */
  text: boolean;
}

/** Decompressed bytes kept per body at most (a guard against compression bombs). */
const MAX_DECODED = 64 * 1024 * 1024;

/** Undoes one content coding; partial input (a cut body) gives what can be decoded. */
function undo(coding: string, data: Buffer): Buffer {
  const opts = { maxOutputLength: MAX_DECODED, finishFlush: constants.Z_SYNC_FLUSH };
  switch (coding) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(data, opts);
    case 'deflate':
      // RFC 9110 says zlib-wrapped; some servers send raw deflate.
      try {
        return inflateSync(data, opts);
      } catch {
        return inflateRawSync(data, opts);
      }
    case 'br':
      return brotliDecompressSync(data, { maxOutputLength: MAX_DECODED, finishFlush: constants.BROTLI_OPERATION_FLUSH });
    default:
      throw new Error(`content coding "${coding}" is not decoded`);
  }
}

/** Whether bytes read as text: valid UTF-8 (a cut at the end allowed) without NUL bytes. */
export function looksLikeText(data: Buffer): boolean {
  if (data.length === 0) return true;
  if (data.includes(0)) return false;
  if (isUtf8(data)) return true;
  // A preview or a cut body may end inside a multi-byte sequence.
  for (let cut = 1; cut <= 3 && cut < data.length; cut++) {
    if (isUtf8(data.subarray(0, data.length - cut))) return true;
  }
  return false;
}

const decodedCache = new WeakMap<HttpBody, DecodedBody>();

/** The body with its Content-Encoding undone (gzip, deflate, br, several in order); cached per body. */
export function decodeBody(body: HttpBody, headers: readonly HttpHeader[]): DecodedBody {
  const cached = decodedCache.get(body);
  if (cached !== undefined) return cached;
  const result = decodeUncached(body, headers);
  decodedCache.set(body, result);
  return result;
}

function decodeUncached(body: HttpBody, headers: readonly HttpHeader[]): DecodedBody {
  const raw = body.bytes;
  const header = headerValue(headers, 'content-encoding');
  const codings = header === undefined ? [] : header.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0 || raw.length === 0) return { bytes: raw, text: looksLikeText(raw), ...keptNote(body) };
  let data = raw;
  try {
    // Codings are listed in the order they were applied.
    for (let i = codings.length - 1; i >= 0; i--) data = undo(codings[i]!, data);
  } catch (err) {
    return { bytes: raw, text: looksLikeText(raw), note: `shown as sent: ${(err as Error).message}` };
  }
  const partial = !body.complete || body.bytes.length < body.size;
  return {
    bytes: data,
    encoding: codings.join(', '),
    text: looksLikeText(data),
    ...(partial ? { note: 'decoded from a partial body' } : {}),
  };
}

/** A note when captured body bytes were not kept (the cap, or bytes after a gap); missing ones are counted apart. */
function keptNote(body: HttpBody): { note?: string } {
  return body.bytes.length < body.size - (body.missing ?? 0) ? { note: `only the first ${body.bytes.length} of ${body.size} bytes were kept` } : {};
}

/**
 * How a record builder turns body bytes into the string value of a JSON record (HAR, jsonl http):
 * the string itself, or a stand-in that a writer replaces by the bytes encoded straight into its
 * output (src/output/body-json.ts), so a large body never becomes a JS string.
 */
export interface BodyStrings {
  /** Text bytes (looksLikeText) as a string: what `bytes.toString('utf8')` gives. */
  text(bytes: Buffer): string;
  /** Binary bytes as base64: what `bytes.toString('base64')` gives. */
  base64(bytes: Buffer): string;
}

/** The strings themselves, for records kept as objects (the web view, tests). */
export const PLAIN_BODY_STRINGS: BodyStrings = {
  text: (bytes) => bytes.toString('utf8'),
  base64: (bytes) => bytes.toString('base64'),
};
