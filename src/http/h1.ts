// HTTP/1.x: two http-parser-js parsers per connection, one per direction, and a queue that pairs
// responses with requests in order (keep-alive and pipelining). HEAD, 204 and 304 responses have
// no body whatever their Content-Length says; 1xx responses are interim; 101 and CONNECT end HTTP.
// A gap of known length inside a body is skipped (the body is marked incomplete); a gap in a
// response's head is resynchronised at the next status line; one in a request's head ends decoding.

import { HTTPParser } from 'http-parser-js';
import type { TlsCall } from '../events/types.js';
import { classifyStart, StartKind } from './detect.js';
import { BodyBuilder, buildUrl, emptyBody, fromWireText, headerValue, http1Version, HttpDecodeError, wireHeader } from './message.js';
import type { DecoderOptions, ExchangeOut } from './message.js';
import type { HttpConnection, HttpExchange, HttpHeader, HttpInterim, HttpRequest } from './types.js';

/** Which end of the connection bytes came from. */
export const enum Side {
  /** Client to server: requests. */
  Request = 0,
  /** Server to client: responses. */
  Response = 1,
}

/** What onHeadersComplete gets (compat mode: the method is a string). */
interface HeaderInfo {
  versionMajor: number;
  versionMinor: number;
  headers: string[];
  method: string;
  url: string;
  statusCode: number;
  statusMessage: string;
  upgrade: boolean;
  shouldKeepAlive: boolean;
}

/** The parser fields that tell where in the current chunk it is. */
interface ParserPosition {
  offset: number;
  end: number;
}

/** The parser's internal state, read to skip gaps and to bound header sizes. */
interface ParserState {
  state: string;
  line: string;
  body_bytes: number | null;
  info: { headers: string[] };
  trailers: string[];
  nextRequest(): void;
  reinitialize(type: unknown): void;
}

/** A request on its way to being an exchange. */
interface Pending {
  exchange: HttpExchange;
  reqBody: BodyBuilder;
  resBody: BodyBuilder | undefined;
  reqDone: boolean;
  resDone: boolean;
  /** The request asked to switch protocols (Upgrade, CONNECT). */
  upgradeAsked: boolean;
  /** The response agreed: 101, or 2xx to CONNECT. */
  switched: string | undefined;
  /** 1xx responses before the final one. */
  interim: HttpInterim[];
}

/** An http-parser-js parser instance. */
type Parser = InstanceType<typeof HTTPParser>;

/** Parser return value: no body follows these headers. */
const SKIP_BODY = 1;
/** Parser return value: no body, and stop parsing (the bytes after are not HTTP). */
const SKIP_AND_STOP = 2;
/** Request bytes held while an upgrade's answer is awaited, at most. */
const MAX_HELD = 1 << 20;

/** Header and trailer bytes one message may have before tlstap calls the bytes not HTTP. */
export const MAX_HEAD_BYTES = 1 << 20;

// The parser turns head bytes into strings with this encoding; the default, 'ascii', strips the
// high bit. latin1 keeps every byte, and wireHeader() makes UTF-8 of them where it is valid.
(HTTPParser as unknown as { encoding: BufferEncoding }).encoding = 'latin1';

/** A parser whose own header limit is off: it counts a whole call that ends in a head against it. */
function newParser(type: typeof HTTPParser.REQUEST | typeof HTTPParser.RESPONSE): Parser {
  const parser = new HTTPParser(type);
  // reinitialize() sets maxHeaderSize again after each message: make it stay off.
  Object.defineProperty(parser, 'maxHeaderSize', { get: () => Infinity, set: () => undefined });
  return parser;
}

/** Head bytes the parser holds for the message it is in: the open line and the fields so far. */
function headBytes(p: ParserState): number {
  let n = p.line.length;
  for (const s of p.state === 'BODY_CHUNKTRAILERS' ? p.trailers : p.info.headers) n += s.length + 2;
  return n;
}

const HEAD_STATES = new Set(['REQUEST_LINE', 'RESPONSE_LINE', 'HEADER', 'BODY_CHUNKTRAILERS']);

function headerList(raw: string[]): HttpHeader[] {
  const out: HttpHeader[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push(wireHeader(raw[i]!, raw[i + 1]!));
  return out;
}

/** Decodes one HTTP/1.x connection; throws HttpDecodeError when it has to give up. */
export class Http1Decoder {
  private readonly req = newParser(HTTPParser.REQUEST);
  private readonly res = newParser(HTTPParser.RESPONSE);
  private nowNs = 0n;
  private reqStartNs: bigint | undefined;
  private resStartNs: bigint | undefined;
  /** Requests in order; the response being parsed belongs to the first one without resDone. */
  private readonly queue: Pending[] = [];
  /** The request whose headers or body are being parsed. */
  private current: Pending | undefined;
  /** The request whose response is being parsed. */
  private answering: Pending | undefined;
  private interim = false;
  /** Request bytes after an upgrade request, until the response says whether it happened. */
  private held: Buffer[] | undefined;
  private heldBytes = 0;
  /** Set by the response callbacks when the protocol switched. */
  private switched: Pending | undefined;
  /** A response's head went uncaptured: response bytes are skipped up to the next status line. */
  private resync = false;
  /** Response bytes skipped while resynchronising, for the note on the next exchange. */
  private skipped = 0;

  constructor(
    private readonly out: ExchangeOut,
    private readonly conn: HttpConnection,
    private readonly opts: DecoderOptions,
  ) {
    // The property setters put the parser in its compat mode (method as a string); bound once.
    this.req.onHeadersComplete = this.onRequestHeaders.bind(this) as never;
    this.req.onBody = this.onRequestBody.bind(this);
    this.req.onHeaders = this.onRequestTrailers.bind(this);
    this.req.onMessageComplete = this.onRequestComplete.bind(this);
    this.res.onHeadersComplete = this.onResponseHeaders.bind(this) as never;
    this.res.onBody = this.onResponseBody.bind(this);
    this.res.onHeaders = this.onResponseTrailers.bind(this);
    this.res.onMessageComplete = this.onResponseComplete.bind(this);
  }

  /** Feeds the captured bytes of one call from `side`. */
  feed(side: Side, call: TlsCall, data: Buffer): void {
    this.nowNs = call.tsNs;
    if (data.length === 0) return;
    if (side === Side.Request) {
      if (this.held !== undefined || this.waitingUpgrade()) {
        this.hold(data, 0);
        return;
      }
      this.reqStartNs ??= call.tsNs;
      this.execute(this.req, data, 'request');
    } else {
      if (this.resync && !this.resynced(data)) return;
      this.resStartNs ??= call.tsNs;
      const consumed = this.execute(this.res, data, 'response');
      if (this.switched !== undefined) this.finishSwitch(data, consumed);
      else if (this.held !== undefined && !this.waitingUpgrade()) this.resume();
    }
  }

  /**
   * `n` bytes from `side` went by uncaptured right after the bytes fed last (`what` says how).
   * Inside a body they are skipped and counted; in a response's head the decoder resynchronises
   * at the next status line; anywhere else it gives up (HttpDecodeError 'gap').
   */
  gap(side: Side, n: number, what: string): void {
    const parser = (side === Side.Request ? this.req : this.res) as unknown as ParserState;
    if (side === Side.Response && this.resync) {
      this.skipped += n;
      return;
    }
    if (side === Side.Request && (this.held !== undefined || this.waitingUpgrade())) {
      throw new HttpDecodeError('gap', `${what} after an upgrade request`);
    }
    const body = side === Side.Request ? this.current?.reqBody : this.answering?.resBody;
    let left = n;
    if (parser.state === 'BODY_RAW') {
      body?.skip(n);
      return;
    }
    if (parser.state === 'BODY_CHUNK' && n <= parser.body_bytes!) {
      body?.skip(n);
      parser.body_bytes! -= n;
      if (parser.body_bytes === 0) parser.state = 'BODY_CHUNKEMPTYLINE';
      return;
    }
    if (parser.state === 'BODY_SIZED') {
      const inBody = Math.min(n, parser.body_bytes!);
      body?.skip(inBody);
      parser.body_bytes! -= inBody;
      left -= inBody;
      if (parser.body_bytes === 0) {
        this.userCall(() => parser.nextRequest());
        if (left === 0) return;
      } else return;
    }
    // The gap covers (part of) a message's head or chunk framing: its length tells nothing.
    const where = `${what}, in the head of a ${side === Side.Request ? 'request' : 'response'}`;
    if (side === Side.Request) throw new HttpDecodeError('gap', where);
    this.startResync(left, where);
  }

  /** The connection ended: a response delimited by the close ends here; the rest is incomplete. */
  end(why: string): void {
    if (this.answering !== undefined && this.answering.exchange.response !== undefined) {
      // A response without length or chunking runs to the close.
      try {
        this.res.finish();
      } catch {
        // Whatever is open is reported incomplete below.
      }
    }
    this.abort(why);
  }

  /** Response bytes from `skipped` on are not HTTP until a status line: the open response ends here. */
  private startResync(skipped: number, why: string): void {
    this.resync = true;
    this.skipped = skipped;
    this.interim = false;
    (this.res as unknown as ParserState).reinitialize(HTTPParser.RESPONSE);
    const p = this.answering ?? this.queue.find((q) => !q.resDone);
    this.answering = undefined;
    if (p === undefined) return;
    p.resDone = true;
    if (p.exchange.response !== undefined) p.exchange.response.body = p.resBody!.finish(false);
    p.exchange.incomplete = `${p.exchange.response === undefined ? 'no response' : 'response cut'}: ${why}`;
    this.flushQueue();
  }

  /** While resynchronising: whether `data` starts with a status line (then decoding goes on). */
  private resynced(data: Buffer): boolean {
    if (classifyStart(data) !== StartKind.Http1Response) {
      this.skipped += data.length;
      return false;
    }
    this.resync = false;
    this.resStartNs = undefined;
    return true;
  }

  /** Runs a parser method that calls back into this decoder, as execute() does. */
  private userCall(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof HttpDecodeError) throw err;
      throw new HttpDecodeError('malformed', (err as Error).message);
    }
  }

  /** Emits every exchange still open as incomplete, saying why. */
  abort(why: string): void {
    for (const p of this.queue) {
      if (p.exchange.response === undefined) p.exchange.incomplete = `no response: ${why}`;
      else if (!p.resDone) p.exchange.incomplete = `response cut: ${why}`;
      else p.exchange.incomplete = `request cut: ${why}`;
      this.finishBodies(p);
      this.out.emitExchange(p.exchange);
    }
    this.queue.length = 0;
    this.current = undefined;
    this.answering = undefined;
  }

  /** Runs a parser over `data`; returns how many bytes it took. */
  private execute(parser: Parser, data: Buffer, what: string): number {
    let result: number | Error;
    try {
      result = parser.execute(data);
    } catch (err) {
      if (err instanceof HttpDecodeError) throw err;
      throw new HttpDecodeError('malformed', `${what}: ${(err as Error).message}`);
    }
    if (result instanceof Error) {
      const code = (result as NodeJS.ErrnoException).code;
      throw new HttpDecodeError('malformed', `${what}: ${code ? `${code}: ` : ''}${result.message}`);
    }
    // The request parser stops after an upgrade request; what follows waits for the answer.
    if (parser === this.req && result < data.length && this.waitingUpgrade()) this.hold(data, result);
    const state = parser as unknown as ParserState;
    if (HEAD_STATES.has(state.state) && headBytes(state) > MAX_HEAD_BYTES) {
      throw new HttpDecodeError('malformed', `${what}: a head of more than ${MAX_HEAD_BYTES} bytes`);
    }
    return result;
  }

  private waitingUpgrade(): boolean {
    const last = this.queue[this.queue.length - 1];
    return last !== undefined && last.upgradeAsked && last.reqDone && !last.resDone;
  }

  private hold(data: Buffer, from: number): void {
    this.held ??= [];
    this.heldBytes += data.length - from;
    if (this.heldBytes > MAX_HELD) {
      throw new HttpDecodeError('malformed', 'more than 1 MiB sent after an upgrade request before its answer');
    }
    this.held.push(Buffer.from(data.subarray(from)));
  }

  /** The upgrade was refused: parse the held request bytes as HTTP again. */
  private resume(): void {
    const held = this.held!;
    this.held = undefined;
    this.heldBytes = 0;
    for (const chunk of held) {
      this.reqStartNs ??= this.nowNs;
      if (this.held !== undefined) this.hold(chunk, 0);
      else this.execute(this.req, chunk, 'request');
    }
  }

  /** 101 or a CONNECT tunnel: emit the exchange, then hand the connection to raw. */
  private finishSwitch(data: Buffer, restStart: number): never {
    const p = this.switched!;
    const what = p.switched!;
    p.exchange.notes.push(`switched to ${what}; the bytes after this exchange are shown raw`);
    this.flushQueue();
    throw new HttpDecodeError('upgrade', what, restStart < data.length ? data.subarray(restStart) : undefined);
  }

  private onRequestHeaders(info: HeaderInfo): number {
    const headers = headerList(info.headers);
    const version = http1Version(info.versionMajor, info.versionMinor);
    const target = fromWireText(info.url);
    const request: HttpRequest = {
      method: info.method,
      url: buildUrl(this.opts.defaultScheme, headerValue(headers, 'host'), target.text, this.conn),
      target: target.text,
      httpVersion: version,
      headers,
      trailers: [],
      body: emptyBody(),
    };
    const start = this.reqStartNs ?? this.nowNs;
    const p: Pending = {
      exchange: {
        seq: 0,
        httpVersion: version,
        conn: this.conn,
        request,
        timings: { requestStartNs: start, requestEndNs: start },
        notes: target.latin1 ? ['the request target is not UTF-8: shown as latin-1'] : [],
      },
      reqBody: new BodyBuilder(this.opts.maxBodyBytes),
      resBody: undefined,
      reqDone: false,
      resDone: false,
      upgradeAsked: info.upgrade,
      switched: undefined,
      interim: [],
    };
    this.current = p;
    this.queue.push(p);
    return 0;
  }

  private onRequestBody(chunk: Buffer, offset: number, length: number): void {
    const p = this.current;
    if (p === undefined) return;
    p.reqBody.add(chunk, offset, offset + length);
    p.exchange.timings.requestEndNs = this.nowNs;
  }

  private onRequestTrailers(trailers: string[]): void {
    if (this.current) this.current.exchange.request.trailers = headerList(trailers);
  }

  private onRequestComplete(): void {
    const p = this.current;
    this.current = undefined;
    const pos = this.req as unknown as ParserPosition;
    // Pipelined: the next request starts in this same call.
    this.reqStartNs = pos.offset < pos.end ? this.nowNs : undefined;
    if (p === undefined) return;
    p.reqDone = true;
    p.exchange.timings.requestEndNs = this.nowNs;
    p.exchange.request.body = p.reqBody.finish(true);
    this.flushQueue();
  }

  private onResponseHeaders(info: HeaderInfo): number {
    const p = this.queue.find((q) => !q.resDone);
    if (p === undefined) {
      throw new HttpDecodeError('malformed', `a ${info.statusCode} response came with no request to pair it with`);
    }
    const status = info.statusCode;
    const headers = headerList(info.headers);
    if (status >= 100 && status < 200 && status !== 101) {
      this.interim = true;
      p.interim.push({ status, headers, tsNs: this.nowNs });
      return SKIP_BODY;
    }
    if (this.skipped > 0) {
      p.exchange.notes.push(`${this.skipped} response bytes before this response were skipped after a gap`);
      this.skipped = 0;
    }
    p.exchange.response = {
      status,
      statusText: fromWireText(info.statusMessage).text,
      httpVersion: http1Version(info.versionMajor, info.versionMinor),
      headers,
      trailers: [],
      interim: p.interim,
      body: emptyBody(),
    };
    p.exchange.timings.responseStartNs = this.resStartNs ?? this.nowNs;
    p.exchange.timings.responseEndNs = this.nowNs;
    p.resBody = new BodyBuilder(this.opts.maxBodyBytes);
    this.answering = p;
    const method = p.exchange.request.method;
    if (status === 101) {
      const proto = headerValue(headers, 'upgrade') ?? 'another protocol';
      p.switched = /^websocket$/i.test(proto) ? 'WebSocket' : proto;
      return SKIP_AND_STOP;
    }
    if (method === 'CONNECT' && status >= 200 && status < 300) {
      p.switched = 'a CONNECT tunnel';
      return SKIP_AND_STOP;
    }
    if (method === 'HEAD' || status === 204 || status === 304) return SKIP_BODY;
    return 0;
  }

  private onResponseBody(chunk: Buffer, offset: number, length: number): void {
    const p = this.answering;
    if (p === undefined) return;
    p.resBody?.add(chunk, offset, offset + length);
    // A body cut later still has the time of its last captured bytes.
    p.exchange.timings.responseEndNs = this.nowNs;
  }

  private onResponseTrailers(trailers: string[]): void {
    if (this.answering?.exchange.response) this.answering.exchange.response.trailers = headerList(trailers);
  }

  private onResponseComplete(): void {
    const pos = this.res as unknown as ParserPosition;
    this.resStartNs = pos.offset < pos.end ? this.nowNs : undefined;
    if (this.interim) {
      this.interim = false;
      return;
    }
    const p = this.answering;
    this.answering = undefined;
    if (p === undefined) return;
    p.resDone = true;
    const response = p.exchange.response!;
    response.body = p.resBody!.finish(true);
    p.exchange.timings.responseEndNs = this.nowNs;
    if (p.switched !== undefined) {
      this.switched = p;
      return;
    }
    this.flushQueue();
  }

  /** Emits exchanges from the front of the queue while they are whole. */
  private flushQueue(): void {
    while (this.queue.length > 0) {
      const p = this.queue[0]!;
      if (!(p.resDone && p.reqDone)) return;
      this.queue.shift();
      if (p === this.current) this.current = undefined;
      this.out.emitExchange(p.exchange);
    }
  }

  private finishBodies(p: Pending): void {
    if (!p.reqDone) p.exchange.request.body = p.reqBody.finish(false);
    if (p.exchange.response !== undefined && !p.resDone && p.resBody !== undefined) {
      p.exchange.response.body = p.resBody.finish(false);
    }
  }
}

