// HTTP/1.x: two http-parser-js parsers per connection, one per direction, and a queue that pairs
// responses with requests in order (keep-alive and pipelining). HEAD, 204 and 304 responses have
// no body whatever their Content-Length says; 1xx responses are interim; 101 and CONNECT end HTTP.

import { HTTPParser } from 'http-parser-js';
import type { TlsCall } from '../events/types.js';
import { BodyBuilder, buildUrl, emptyBody, headerValue, http1Version, HttpDecodeError } from './message.js';
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

function headerList(raw: string[]): HttpHeader[] {
  const out: HttpHeader[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push({ name: raw[i]!, value: raw[i + 1]! });
  return out;
}

/** Decodes one HTTP/1.x connection; throws HttpDecodeError when it has to give up. */
export class Http1Decoder {
  private readonly req = new HTTPParser(HTTPParser.REQUEST);
  private readonly res = new HTTPParser(HTTPParser.RESPONSE);
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
      this.resStartNs ??= call.tsNs;
      const consumed = this.execute(this.res, data, 'response');
      if (this.switched !== undefined) this.finishSwitch(data, consumed);
      else if (this.held !== undefined && !this.waitingUpgrade()) this.resume();
    }
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
    const request: HttpRequest = {
      method: info.method,
      url: buildUrl(this.opts.defaultScheme, headerValue(headers, 'host'), info.url, this.conn),
      target: info.url,
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
        notes: [],
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
    this.current?.reqBody.add(chunk, offset, offset + length);
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
    p.exchange.response = {
      status,
      statusText: info.statusMessage,
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
    this.answering?.resBody?.add(chunk, offset, offset + length);
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

