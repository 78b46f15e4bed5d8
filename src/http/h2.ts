// HTTP/2: a frame reader per direction (frames may be split across calls anywhere), one HPACK
// decoder per direction kept for the connection's whole life, and streams paired into exchanges.

import { createRequire } from 'node:module';
import type hpackModule from 'hpack.js';
import type { Decompressor, HpackHeader } from 'hpack.js';
import type { TlsCall } from '../events/types.js';
import { Side } from './h1.js';
import { BodyBuilder, buildUrl, emptyBody, headerValue, HttpDecodeError } from './message.js';
import type { DecoderOptions, ExchangeOut } from './message.js';
import type { HttpConnection, HttpExchange, HttpHeader, HttpInterim } from './types.js';

/** The client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER = 9;
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const DEFAULT_TABLE_SIZE = 4096;

/** RFC 9113 §7 error code names. */
const ERROR_CODES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

/** `CANCEL (0x8)`. */
export function h2ErrorName(code: number): string {
  return `${ERROR_CODES[code] ?? 'UNKNOWN'} (0x${code.toString(16)})`;
}

const SIDE_NAME = ['client', 'server'] as const;

/** An HTTP/2 stream on its way to being an exchange. */
interface Stream {
  id: number;
  exchange: HttpExchange;
  reqBody: BodyBuilder;
  resBody: BodyBuilder;
  reqDone: boolean;
  /** Final response headers seen. */
  answered: boolean;
  interim: HttpInterim[];
}

/** A header block still collecting CONTINUATION frames. */
interface OpenBlock {
  type: number;
  streamId: number;
  endStream: boolean;
  promisedId: number;
  fragments: Buffer[];
  size: number;
}

/** Bytes of a frame's payload that went by uncaptured: [at, at + length) in payload offsets. */
export interface Hole {
  at: number;
  length: number;
}

/** Reassembles frames from one direction's bytes; hands whole frames to the decoder. */
class FrameReader {
  /** Bytes of an unfinished frame (or preface), copied. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed before the pending data can be parsed. */
  private need = 0;
  private preface: boolean;
  /** Uncaptured stretches of the pending frame (a DATA frame), zero-filled in `pending`. */
  private holes: Hole[] = [];

  constructor(
    private readonly owner: Http2Decoder,
    private readonly side: Side,
  ) {
    this.preface = side === Side.Request;
  }

  feed(data: Buffer): void {
    if (data.length === 0 && (this.pendingBytes === 0 || this.pendingBytes < this.need)) return;
    if (this.pendingBytes > 0) {
      this.pending.push(Buffer.from(data));
      this.pendingBytes += data.length;
      if (this.pendingBytes < this.need) return;
      data = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    const n = data.length;
    if (this.preface) {
      if (n < H2_PREFACE.length) {
        this.stash(data, 0, H2_PREFACE.length);
        return;
      }
      if (data.compare(H2_PREFACE, 0, H2_PREFACE.length, 0, H2_PREFACE.length) !== 0) {
        throw new HttpDecodeError('malformed', 'the client did not start with the HTTP/2 preface');
      }
      this.preface = false;
      pos = H2_PREFACE.length;
    }
    while (n - pos >= FRAME_HEADER) {
      const length = (data[pos]! << 16) | (data[pos + 1]! << 8) | data[pos + 2]!;
      if (n - pos - FRAME_HEADER < length) break;
      const type = data[pos + 3]!;
      const flags = data[pos + 4]!;
      const streamId = data.readUInt32BE(pos + 5) & 0x7fffffff;
      const start = pos + FRAME_HEADER;
      pos = start + length;
      // Holes belong to the pending frame, which is the first one of the joined bytes.
      const holes = this.holes;
      if (holes.length > 0) this.holes = [];
      this.owner.frame(this.side, type, flags, streamId, data.subarray(start, pos), holes);
    }
    if (pos < n) {
      const need = n - pos >= FRAME_HEADER ? FRAME_HEADER + ((data[pos]! << 16) | (data[pos + 1]! << 8) | data[pos + 2]!) : FRAME_HEADER;
      this.stash(data, pos, need);
    }
  }

  /**
   * `n` bytes went by uncaptured after the bytes fed last. Inside a DATA frame whose header was
   * seen they are a hole in its payload; anywhere else the framing is lost (HttpDecodeError 'gap').
   */
  gap(n: number, what: string): void {
    if (!this.preface && this.pendingBytes >= FRAME_HEADER && this.pendingBytes + n <= this.need) {
      const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      if (head[3] === DATA) {
        this.pending = [head, Buffer.alloc(n)];
        this.holes.push({ at: this.pendingBytes - FRAME_HEADER, length: n });
        this.pendingBytes += n;
        if (this.pendingBytes === this.need) this.feed(Buffer.alloc(0));
        return;
      }
    }
    throw new HttpDecodeError('gap', `${what}, outside the payload of an HTTP/2 DATA frame`);
  }

  /** Whether an incomplete frame is waiting for more bytes. */
  get partial(): boolean {
    return this.pendingBytes > 0;
  }

  private stash(data: Buffer, from: number, need: number): void {
    this.pending.push(Buffer.from(data.subarray(from)));
    this.pendingBytes = data.length - from;
    this.need = need;
  }
}

let hpackLoaded: typeof hpackModule | undefined;

/** hpack.js, loaded when the first HTTP/2 connection is seen: with readable-stream it takes ~17 ms to load. */
function hpack(): typeof hpackModule {
  return (hpackLoaded ??= createRequire(import.meta.url)('hpack.js') as typeof hpackModule);
}

/** Decodes one HTTP/2 connection; throws HttpDecodeError when it has to give up. */
export class Http2Decoder {
  private readonly readers: [FrameReader, FrameReader];
  /** HPACK state for the header blocks each side sends. */
  private readonly hpack: [Decompressor, Decompressor];
  private readonly blocks: [OpenBlock | undefined, OpenBlock | undefined] = [undefined, undefined];
  private readonly streams = new Map<number, Stream>();
  private decoded: HttpHeader[] = [];
  private nowNs = 0n;
  /** Header blocks decoded without error. */
  headerBlocks = 0;

  constructor(
    private readonly out: ExchangeOut,
    private readonly conn: HttpConnection,
    private readonly opts: DecoderOptions,
  ) {
    this.readers = [new FrameReader(this, Side.Request), new FrameReader(this, Side.Response)];
    const collect = this.collect.bind(this);
    this.hpack = [this.newHpack(collect), this.newHpack(collect)];
  }

  private newHpack(collect: (h: HpackHeader) => boolean): Decompressor {
    const d = hpack().decompressor.create({ table: { maxSize: DEFAULT_TABLE_SIZE } });
    // Decoded fields go straight to our list instead of through the stream machinery.
    (d as unknown as { push: typeof collect }).push = collect;
    return d;
  }

  private collect(h: HpackHeader): boolean {
    let { name, value } = h;
    // hpack.js yields one char per byte; UTF-8 values are turned back into text.
    if (/[\x80-\xff]/.test(value)) value = Buffer.from(value, 'latin1').toString('utf8');
    if (/[\x80-\xff]/.test(name)) name = Buffer.from(name, 'latin1').toString('utf8');
    this.decoded.push(h.neverIndex ? { name, value, sensitive: true } : { name, value });
    return true;
  }

  /** Feeds the captured bytes of one call from `side`. */
  feed(side: Side, call: TlsCall, data: Buffer): void {
    this.nowNs = call.tsNs;
    this.readers[side].feed(data);
  }

  /** `n` bytes from `side` went by uncaptured right after the bytes fed last. */
  gap(side: Side, n: number, what: string): void {
    this.readers[side].gap(n, what);
  }

  /** The connection ended: every open stream is emitted as incomplete. */
  end(why: string): void {
    this.abort(why);
  }

  /** Emits every open stream as incomplete, saying why. */
  abort(why: string): void {
    for (const s of this.streams.values()) this.giveUp(s, why);
    this.streams.clear();
  }

  /** One whole frame from `side`. */
  frame(side: Side, type: number, flags: number, streamId: number, payload: Buffer, holes: Hole[] = []): void {
    const open = this.blocks[side];
    if (open !== undefined) {
      if (type !== CONTINUATION || streamId !== open.streamId) {
        throw new HttpDecodeError('malformed', `frame type ${type} on stream ${streamId} inside a header block of stream ${open.streamId}`);
      }
      open.fragments.push(Buffer.from(payload));
      open.size += payload.length;
      if ((flags & FLAG_END_HEADERS) !== 0) {
        this.blocks[side] = undefined;
        this.headerBlock(side, open, Buffer.concat(open.fragments, open.size));
      }
      return;
    }
    switch (type) {
      case DATA:
        this.data(side, flags, streamId, payload, holes);
        break;
      case HEADERS:
      case PUSH_PROMISE:
        this.headers(side, type, flags, streamId, payload);
        break;
      case RST_STREAM:
        this.reset(side, streamId, payload);
        break;
      case SETTINGS:
        if ((flags & FLAG_ACK) === 0) this.settings(side, payload);
        break;
      case GOAWAY:
        this.goaway(side, payload);
        break;
      case CONTINUATION:
        throw new HttpDecodeError('malformed', `CONTINUATION on stream ${streamId} without a header block`);
      default:
        // PRIORITY, PING, WINDOW_UPDATE and extension frames carry nothing we show.
        break;
    }
  }

  /** Strips the pad length byte and the padding of a PADDED frame. */
  private unpad(flags: number, payload: Buffer, what: string): Buffer {
    if ((flags & FLAG_PADDED) === 0) return payload;
    if (payload.length < 1 || payload[0]! >= payload.length) {
      throw new HttpDecodeError('malformed', `${what} frame padding longer than the frame`);
    }
    return payload.subarray(1, payload.length - payload[0]!);
  }

  private data(side: Side, flags: number, streamId: number, payload: Buffer, holes: Hole[]): void {
    if (streamId === 0) throw new HttpDecodeError('malformed', 'DATA on stream 0');
    if (holes.length > 0 && holes[0]!.at === 0 && (flags & FLAG_PADDED) !== 0) {
      throw new HttpDecodeError('gap', `the pad length of a DATA frame on stream ${streamId} was not captured`);
    }
    const body = this.unpad(flags, payload, 'DATA');
    const s = this.streams.get(streamId);
    // A stream reset or finished earlier may still see DATA in flight.
    if (s === undefined) return;
    const builder = side === Side.Request ? s.reqBody : s.resBody;
    if (holes.length === 0) builder.add(body, 0, body.length);
    else addAround(builder, body, body.byteOffset - payload.byteOffset, holes);
    if (side === Side.Request) s.exchange.timings.requestEndNs = this.nowNs;
    else s.exchange.timings.responseEndNs = this.nowNs;
    if ((flags & FLAG_END_STREAM) !== 0) this.endStream(side, s);
  }

  private headers(side: Side, type: number, flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new HttpDecodeError('malformed', `${type === HEADERS ? 'HEADERS' : 'PUSH_PROMISE'} on stream 0`);
    let fragment = this.unpad(flags, payload, type === HEADERS ? 'HEADERS' : 'PUSH_PROMISE');
    let promisedId = 0;
    if (type === HEADERS && (flags & FLAG_PRIORITY) !== 0) {
      if (fragment.length < 5) throw new HttpDecodeError('malformed', 'HEADERS priority fields cut short');
      fragment = fragment.subarray(5);
    } else if (type === PUSH_PROMISE) {
      if (side !== Side.Response) throw new HttpDecodeError('malformed', 'PUSH_PROMISE from the client');
      if (fragment.length < 4) throw new HttpDecodeError('malformed', 'PUSH_PROMISE cut short');
      promisedId = fragment.readUInt32BE(0) & 0x7fffffff;
      fragment = fragment.subarray(4);
    }
    const block: OpenBlock = {
      type,
      streamId,
      endStream: type === HEADERS && (flags & FLAG_END_STREAM) !== 0,
      promisedId,
      fragments: [],
      size: 0,
    };
    if ((flags & FLAG_END_HEADERS) !== 0) {
      this.headerBlock(side, block, fragment);
      return;
    }
    block.fragments.push(Buffer.from(fragment));
    block.size = fragment.length;
    this.blocks[side] = block;
  }

  /** Decodes a whole header block with the side's HPACK state; any error ends decoding. */
  private decodeBlock(side: Side, block: Buffer, streamId: number): HttpHeader[] {
    const d = this.hpack[side];
    this.decoded = [];
    try {
      d._decoder.push(block);
      while (!d._decoder.isEmpty()) d._execute();
    } catch (err) {
      throw new HttpDecodeError(
        'hpack',
        `header block ${this.headerBlocks + 1} (stream ${streamId}, from the ${SIDE_NAME[side]}): ${(err as Error).message}`,
      );
    }
    this.headerBlocks++;
    return this.decoded;
  }

  private headerBlock(side: Side, block: OpenBlock, bytes: Buffer): void {
    const headers = this.decodeBlock(side, bytes, block.streamId);
    if (block.type === PUSH_PROMISE) {
      const s = this.open(block.promisedId, headers);
      s.exchange.pushed = true;
      s.reqDone = true;
      return;
    }
    let s = this.streams.get(block.streamId);
    if (side === Side.Request) {
      if (s === undefined) s = this.open(block.streamId, headers);
      else s.exchange.request.trailers = headers;
    } else {
      if (s === undefined) {
        throw new HttpDecodeError('malformed', `response headers on stream ${block.streamId}, which has no request`);
      }
      this.responseHeaders(s, headers);
    }
    if (block.endStream) this.endStream(side, s);
  }

  private open(id: number, headers: HttpHeader[]): Stream {
    const pseudo = (name: string): string | undefined => {
      for (const h of headers) if (h.name === name) return h.value;
      return undefined;
    };
    const method = pseudo(':method') ?? '';
    const path = pseudo(':path') ?? '';
    const authority = pseudo(':authority') ?? headerValue(headers, 'host');
    const scheme = pseudo(':scheme') ?? this.opts.defaultScheme;
    const target = method === 'CONNECT' ? authority ?? '' : path;
    const s: Stream = {
      id,
      exchange: {
        seq: 0,
        httpVersion: 'HTTP/2',
        conn: this.conn,
        streamId: id,
        request: {
          method,
          url: buildUrl(scheme, authority, target, this.conn),
          target,
          httpVersion: 'HTTP/2',
          headers,
          trailers: [],
          body: emptyBody(),
        },
        timings: { requestStartNs: this.nowNs, requestEndNs: this.nowNs },
        notes: [],
      },
      reqBody: new BodyBuilder(this.opts.maxBodyBytes),
      resBody: new BodyBuilder(this.opts.maxBodyBytes),
      reqDone: false,
      answered: false,
      interim: [],
    };
    this.streams.set(id, s);
    return s;
  }

  private responseHeaders(s: Stream, headers: HttpHeader[]): void {
    const ex = s.exchange;
    if (s.answered) {
      ex.response!.trailers = headers;
      return;
    }
    let status = 0;
    for (const h of headers) if (h.name === ':status') status = Number(h.value);
    if (status >= 100 && status < 200) {
      s.interim.push({ status, headers, tsNs: this.nowNs });
      return;
    }
    s.answered = true;
    ex.response = {
      status,
      statusText: '',
      httpVersion: 'HTTP/2',
      headers,
      trailers: [],
      interim: s.interim,
      body: emptyBody(),
    };
    ex.timings.responseStartNs = this.nowNs;
    ex.timings.responseEndNs = this.nowNs;
  }

  private endStream(side: Side, s: Stream): void {
    if (side === Side.Request) {
      s.reqDone = true;
      s.exchange.timings.requestEndNs = this.nowNs;
      s.exchange.request.body = s.reqBody.finish(true);
      return;
    }
    const ex = s.exchange;
    if (ex.response === undefined) {
      this.giveUp(s, 'the server ended the stream without a response');
      this.streams.delete(s.id);
      return;
    }
    ex.timings.responseEndNs = this.nowNs;
    ex.response.body = s.resBody.finish(true);
    if (!s.reqDone) {
      ex.request.body = s.reqBody.finish(false);
      ex.notes.push('the response ended before the request did');
    }
    this.streams.delete(s.id);
    this.out.emitExchange(ex);
  }

  private reset(side: Side, streamId: number, payload: Buffer): void {
    const s = this.streams.get(streamId);
    if (s === undefined) return;
    const code = payload.length >= 4 ? payload.readUInt32BE(0) : 0;
    this.streams.delete(streamId);
    this.giveUp(s, `stream reset by the ${SIDE_NAME[side]}: ${h2ErrorName(code)}`);
  }

  private settings(side: Side, payload: Buffer): void {
    for (let i = 0; i + 6 <= payload.length; i += 6) {
      if (payload.readUInt16BE(i) !== SETTINGS_HEADER_TABLE_SIZE) continue;
      // A side's setting bounds the table the other side's encoder may use. We only watch, so
      // we accept any size update up to the largest value either side has allowed.
      const table = this.hpack[side === Side.Request ? Side.Response : Side.Request]._table;
      table.protocolMaxSize = Math.max(table.protocolMaxSize, payload.readUInt32BE(i + 2));
    }
  }

  private goaway(side: Side, payload: Buffer): void {
    if (payload.length < 8) return;
    const last = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    // Streams the sender never processed will get no response.
    for (const s of [...this.streams.values()]) {
      if (s.id > last && (s.id % 2 === 1) === (side === Side.Response)) {
        this.streams.delete(s.id);
        this.giveUp(s, `not processed: GOAWAY from the ${SIDE_NAME[side]} (${h2ErrorName(code)})`);
      }
    }
  }

  private giveUp(s: Stream, why: string): void {
    const ex = s.exchange;
    if (ex.response !== undefined && whole(s.resBody, ex.response.headers, noBody(ex.request.method, ex.response.status))) {
      // The message is all there (an empty DATA frame with END_STREAM, unread by the client, is not).
      ex.response.body = s.resBody.finish(true);
      if (!s.reqDone) ex.request.body = s.reqBody.finish(whole(s.reqBody, ex.request.headers, false));
      ex.notes.push(`the stream did not end (${why}), but the response has the whole body its headers announced`);
      this.out.emitExchange(ex);
      return;
    }
    ex.incomplete = ex.response === undefined ? `no response: ${why}` : `response cut: ${why}`;
    if (!s.reqDone) ex.request.body = s.reqBody.finish(false);
    if (ex.response !== undefined) ex.response.body = s.resBody.finish(false);
    this.out.emitExchange(ex);
  }
}

/** Adds a DATA frame's body (at `offset` in its payload) to `builder`, skipping the payload's holes. */
function addAround(builder: BodyBuilder, body: Buffer, offset: number, holes: Hole[]): void {
  let pos = 0;
  for (const hole of holes) {
    const from = Math.max(hole.at - offset, pos);
    const to = Math.min(hole.at + hole.length - offset, body.length);
    if (to <= from) continue;
    builder.add(body, pos, from);
    builder.skip(to - from);
    pos = to;
  }
  builder.add(body, pos, body.length);
}

/** Responses that have no body whatever their headers say. */
function noBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304;
}

/** Whether a body that has not seen END_STREAM holds all that content-length announced. */
function whole(body: BodyBuilder, headers: readonly HttpHeader[], empty: boolean): boolean {
  if (body.missing > 0) return false;
  if (empty) return body.size === 0;
  const length = headerValue(headers, 'content-length');
  return length !== undefined && /^\d+$/.test(length) && Number(length) === body.size;
}
