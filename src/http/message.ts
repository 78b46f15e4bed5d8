// Pieces shared by the HTTP/1.x and HTTP/2 decoders: body accumulation, the error that sends a
// connection to raw, and building the URL of a request.

import { constants, isUtf8 } from 'node:buffer';
import type { FallbackReason, HttpBody, HttpConnection, HttpExchange, HttpHeader, HttpVersion } from './types.js';
import { formatEndpoint } from '../events/addresses.js';

/** Stops decoding a connection: it is shown raw from here on, for `reason`. */
export class HttpDecodeError extends Error {
  constructor(
    readonly reason: FallbackReason,
    message: string,
    /** Bytes of the current call after the point where HTTP ended (an upgrade), to show raw. */
    readonly rest?: Buffer,
  ) {
    super(message);
    this.name = 'HttpDecodeError';
  }
}

/** What a protocol decoder hands its exchanges to. */
export interface ExchangeOut {
  /** Emits a finished or given-up exchange (`incomplete` set in the latter case). */
  emitExchange(exchange: HttpExchange): void;
}

/** Settings shared by the decoders. */
export interface DecoderOptions {
  /** Body bytes kept per message; the size is counted beyond it (default 16 MiB). */
  maxBodyBytes: number;
  /** Scheme for HTTP/1.x URLs (`https`: tlstap sees TLS plaintext). */
  defaultScheme: string;
}

/** Header bytes as parsers hand them (one char per byte): UTF-8 where valid, else left as latin-1. */
export function fromWireText(s: string): { text: string; latin1: boolean } {
  // eslint-disable-next-line no-control-regex
  if (!/[\x80-\xff]/.test(s)) return { text: s, latin1: false };
  const bytes = Buffer.from(s, 'latin1');
  return isUtf8(bytes) ? { text: bytes.toString('utf8'), latin1: false } : { text: s, latin1: true };
}

/** A header field from wire text: the value UTF-8 where valid, else latin-1 and flagged. */
export function wireHeader(name: string, value: string, sensitive = false): HttpHeader {
  const n = fromWireText(name);
  const v = fromWireText(value);
  const h: HttpHeader = { name: n.text, value: v.text };
  if (sensitive) h.sensitive = true;
  if (n.latin1 || v.latin1) h.latin1 = true;
  return h;
}

/**
 * Body bytes kept as separate copies of the calls' pieces, at most; past this a body's bytes go into
 * one buffer the size of the cap (see BodyBuilder).
 */
export const BODY_PIECES_BYTES = 1024 * 1024;

/**
 * A body while it arrives: copies of its bytes up to a cap, the total size and the bytes not captured.
 * The first BODY_PIECES_BYTES are kept as copies of the pieces (a small body costs what it holds);
 * a larger body moves into one buffer of the cap's size, filled in place, whose kept bytes become
 * the body without another copy: the memory a body holds is its kept bytes (pages never written
 * are never resident) plus one piece, never the pieces and their join at once.
 */
export class BodyBuilder {
  private pieces: Buffer[] = [];
  /** The one buffer of a body past BODY_PIECES_BYTES; bytes kept are its first `kept`. */
  private whole: Buffer | undefined;
  private kept = 0;
  size = 0;
  /** Body bytes that went by without being captured (a gap of known length). */
  missing = 0;

  /** Bytes that may still be kept. */
  private room: number;

  constructor(max: number) {
    this.room = max;
  }

  /** Adds `data[start, end)`, copying what is kept (the call's buffer may be reused). */
  add(data: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n <= 0) return;
    this.size += n;
    if (this.room <= 0) return;
    const take = Math.min(this.room, n);
    if (this.whole === undefined && this.kept + take > BODY_PIECES_BYTES && this.kept + this.room <= constants.MAX_LENGTH) this.moveIntoWhole();
    if (this.whole !== undefined) data.copy(this.whole, this.kept, start, start + take);
    else this.pieces.push(Buffer.from(data.subarray(start, start + take)));
    this.kept += take;
    this.room -= take;
  }

  /** The pieces kept so far go into one buffer with room for every byte the cap allows. */
  private moveIntoWhole(): void {
    // Uninitialised: its pages become resident only as bytes are written into them.
    const whole = Buffer.allocUnsafeSlow(this.kept + this.room);
    let at = 0;
    for (const piece of this.pieces) at += piece.copy(whole, at);
    this.pieces = [];
    this.whole = whole;
  }

  /**
   * `n` body bytes went by uncaptured: they count in the size, and nothing after them is kept (the
   * bytes kept stay one contiguous prefix of the body).
   */
  skip(n: number): void {
    this.size += n;
    this.missing += n;
    this.room = 0;
  }

  /** The body as the exchange carries it; a body with missing bytes is never complete. */
  finish(complete: boolean): HttpBody {
    let bytes: Buffer;
    if (this.whole !== undefined) bytes = this.whole.subarray(0, this.kept);
    else {
      bytes = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.kept);
      // The joined bytes replace the pieces: a body is not held twice while its exchange lives.
      this.pieces = [bytes];
    }
    const body: HttpBody = { bytes, size: this.size, complete: complete && this.missing === 0 };
    if (this.missing > 0) body.missing = this.missing;
    return body;
  }
}

/** An empty, complete body. */
export function emptyBody(): HttpBody {
  return { bytes: Buffer.alloc(0), size: 0, complete: true };
}

/** The value of the first header named `name` (case-insensitive), or undefined. */
export function headerValue(headers: readonly HttpHeader[], name: string): string | undefined {
  for (const h of headers) if (h.name.length === name.length && h.name.toLowerCase() === name) return h.value;
  return undefined;
}

/** The server's address as an authority, when the connection tracker knows it. */
export function serverAuthority(conn: HttpConnection): string | undefined {
  const server = conn.role === 'client' ? conn.remote : conn.local;
  return server ? formatEndpoint(server) : undefined;
}

/** scheme://authority + target; an absolute-form target (proxies) is already a URL. */
export function buildUrl(scheme: string, authority: string | undefined, target: string, conn: HttpConnection): string {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(target)) return target;
  const host = authority ?? serverAuthority(conn) ?? 'unknown-host';
  // CONNECT carries an authority, OPTIONS may carry `*`.
  if (!target.startsWith('/')) return target === '*' ? `${scheme}://${host}` : `${scheme}://${target}`;
  return `${scheme}://${host}${target}`;
}

/** HTTP/1.x version text from the parser's numbers. */
export function http1Version(major: number, minor: number): HttpVersion {
  return major === 1 && minor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
}
