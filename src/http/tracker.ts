// The HTTP tracker: groups calls into connections, detects the protocol from the first bytes of
// each direction, decodes HTTP/1.x or HTTP/2 and hands exchanges to its listeners. A connection
// that cannot be decoded (not HTTP, caught midway, malformed, HPACK failure, bytes missing) is
// passed on raw with a note, and counted; nothing here ever throws into the capture.

import { walkHoles } from '../events/types.js';
import type { CallSink, ConnectionEvent, Direction, TlsCall } from '../events/types.js';
import { classifyStart, guessRole, MAX_START_LINE, StartKind } from './detect.js';
import { Http1Decoder, Side } from './h1.js';
import { Http2Decoder } from './h2.js';
import { HttpDecodeError } from './message.js';
import type { DecoderOptions, ExchangeOut } from './message.js';
import { FALLBACK_REASONS } from './types.js';
import type { FallbackReason, HttpConnection, HttpExchange, HttpListener, HttpStats } from './types.js';

/** Options of an HttpTracker. */
export interface HttpTrackerOptions {
  /** Body bytes kept per message (default 16 MiB); sizes are counted beyond it. */
  maxBodyBytes?: number;
  /** Scheme of HTTP/1.x URLs (default `https`). */
  defaultScheme?: string;
}

const enum Mode {
  Detecting,
  Http,
  Raw,
}

/** Calls held while the protocol is not known yet, at most (then the connection is raw). */
const MAX_HELD_CALLS = 64;

/** One connection as the tracker sees it. */
class Conn {
  mode = Mode.Detecting;
  decoder: Http1Decoder | Http2Decoder | undefined;
  /** The call direction that carries requests. */
  requestDir: Direction = 'write';
  /** Calls seen while detecting, with their bytes copied. */
  held: TlsCall[] = [];
  /** The first bytes of each direction while detecting. */
  start: [Buffer, Buffer] = [EMPTY, EMPTY];
  constructor(readonly info: HttpConnection) {}
}

const EMPTY = Buffer.alloc(0);

/** Why an otherwise whole exchange is incomplete: body bytes that were not captured. */
function missingNote(ex: HttpExchange): string | undefined {
  const parts: string[] = [];
  if (ex.request.body.missing) parts.push(`request body: ${ex.request.body.missing} bytes not captured`);
  if (ex.response?.body.missing) parts.push(`response body: ${ex.response.body.missing} bytes not captured`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** A fresh stats object with every counter at zero. */
export function emptyHttpStats(): HttpStats {
  const fallbacks = {} as Record<FallbackReason, number>;
  for (const reason of Object.keys(FALLBACK_REASONS) as FallbackReason[]) fallbacks[reason] = 0;
  return {
    connections: 0,
    http1Connections: 0,
    http2Connections: 0,
    exchanges: 0,
    http1Exchanges: 0,
    http2Exchanges: 0,
    incompleteExchanges: 0,
    fallbacks,
    headerBlocks: 0,
    hpackErrors: 0,
  };
}

/**
 * Rebuilds HTTP exchanges from calls. It is a CallSink of its own, fed once by the pipeline; the
 * HTTP outputs (-f http, jsonl http records, HAR) are its listeners. It reports their backpressure
 * as its own and closes them when it closes.
 */
export class HttpTracker implements CallSink, ExchangeOut {
  /** The counters for the summary; updated as calls arrive. */
  readonly stats: HttpStats = emptyHttpStats();
  private readonly listeners: HttpListener[] = [];
  private readonly byId = new Map<number, Conn>();
  private readonly byKey = new Map<string, Conn>();
  private readonly opts: DecoderOptions;
  /** The connection of the previous call, to skip the map lookup for runs on one connection. */
  private lastConn: Conn | undefined;
  private lastPid = -1;
  private lastSsl = -1n;
  private lastId: number | undefined = -1;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: HttpTrackerOptions = {}) {
    this.opts = { maxBodyBytes: opts.maxBodyBytes ?? 16 * 1024 * 1024, defaultScheme: opts.defaultScheme ?? 'https' };
  }

  /** Adds a consumer of exchanges, fallbacks and raw calls. */
  subscribe(listener: HttpListener): void {
    this.listeners.push(listener);
  }

  /** Takes one call in capture order. */
  write(call: TlsCall): void {
    if (this.closed) return;
    const conn = this.connFor(call);
    switch (conn.mode) {
      case Mode.Http:
        this.feed(conn, call);
        break;
      case Mode.Raw:
        this.emitRaw(call, conn);
        break;
      default:
        this.detect(conn, call);
    }
  }

  /** Connection lifecycle: an open fixes the connection's identity, a close ends it. */
  connection(event: ConnectionEvent): void {
    if (this.closed) return;
    if (event.type === 'open') {
      if (!this.byId.has(event.conn.id)) this.byId.set(event.conn.id, this.newConn(event.conn.pid, event.comm, event.conn.ssl, event.conn));
      return;
    }
    const conn = this.byId.get(event.conn.id);
    if (conn === undefined) return;
    this.byId.delete(event.conn.id);
    if (this.lastConn === conn) this.lastConn = undefined;
    this.finish(conn, `connection closed (${event.reason ?? 'closed'})`);
  }

  /** True while a listener's output is behind and the producer should pause. */
  get needsDrain(): boolean {
    return this.listeners.some((l) => l.needsDrain === true);
  }

  /** Resolves when every listener's output can take more. */
  async drained(): Promise<void> {
    await Promise.all(this.listeners.map((l) => (l.needsDrain === true ? l.drained?.() : undefined)));
  }

  /**
   * Ends every connection (open exchanges are emitted as incomplete), tells the listeners, then
   * closes their outputs; rejects with the first output's failure once all are closed.
   */
  close(): Promise<void> {
    this.closing ??= this.end();
    return this.closing;
  }

  private async end(): Promise<void> {
    for (const conn of this.byId.values()) this.finish(conn, 'the capture ended');
    for (const conn of this.byKey.values()) this.finish(conn, 'the capture ended');
    this.byId.clear();
    this.byKey.clear();
    this.closed = true;
    for (const l of this.listeners) {
      try {
        l.end?.(this.stats);
      } catch {
        // A listener's failure is its own.
      }
    }
    const closed = await Promise.allSettled(this.listeners.map((l) => l.close?.()));
    const failed = closed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** Hands an exchange to the listeners (called by the decoders). */
  emitExchange(exchange: HttpExchange): void {
    const s = this.stats;
    exchange.seq = ++s.exchanges;
    exchange.incomplete ??= missingNote(exchange);
    if (exchange.httpVersion === 'HTTP/2') s.http2Exchanges++;
    else s.http1Exchanges++;
    if (exchange.incomplete !== undefined) s.incompleteExchanges++;
    for (const l of this.listeners) {
      try {
        l.exchange?.(exchange);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  private connFor(call: TlsCall): Conn {
    const id = call.conn?.id;
    if (this.lastConn !== undefined && call.pid === this.lastPid && call.ssl === this.lastSsl && id === this.lastId) {
      return this.lastConn;
    }
    let conn: Conn | undefined;
    if (id !== undefined) {
      conn = this.byId.get(id);
      if (conn === undefined) {
        conn = this.newConn(call.pid, call.comm, call.ssl, call.conn);
        this.byId.set(id, conn);
      } else if (call.conn!.remote !== undefined && conn.info.remote === undefined) {
        conn.info.local = call.conn!.local;
        conn.info.remote = call.conn!.remote;
      }
    } else {
      const key = `${call.pid}:${call.ssl}`;
      conn = this.byKey.get(key);
      if (conn === undefined) {
        conn = this.newConn(call.pid, call.comm, call.ssl, undefined);
        this.byKey.set(key, conn);
      }
    }
    this.lastConn = conn;
    this.lastPid = call.pid;
    this.lastSsl = call.ssl;
    this.lastId = id;
    return conn;
  }

  private newConn(pid: number, comm: string, ssl: bigint, info: TlsCall['conn']): Conn {
    this.stats.connections++;
    const c: HttpConnection = { pid, comm, ssl, role: 'client' };
    if (info !== undefined) {
      c.id = info.id;
      if (info.local !== undefined) c.local = info.local;
      if (info.remote !== undefined) c.remote = info.remote;
    }
    return new Conn(c);
  }

  /** Looks at the first bytes of each direction until one of them shows who the client is. */
  private detect(conn: Conn, call: TlsCall): void {
    const d = call.dir === 'write' ? 0 : 1;
    conn.held.push({ ...call, data: Buffer.from(call.data) });
    const before = conn.start[d];
    if (before.length < MAX_START_LINE) {
      conn.start[d] = before.length === 0 ? conn.held[conn.held.length - 1]!.data : Buffer.concat([before, call.data]);
    }
    const kinds = [classifyStart(conn.start[0]), classifyStart(conn.start[1])];
    // Bytes or whole calls were lost before the protocol was known: the start may be missing.
    const gap = (call.lost > 0 || (call.callsMissedBefore ?? 0) > 0) && conn.start[d].length === call.data.length;
    for (const k of [d, 1 - d]) {
      const kind = kinds[k]!;
      if (kind === StartKind.Http1Request || kind === StartKind.Http2Preface) {
        this.startHttp(conn, k === 0 ? 'write' : 'read', kind === StartKind.Http2Preface);
        return;
      }
    }
    if (gap) return this.detectFailed(conn, 'gap', call.lost > 0 ? `${call.lost} bytes lost at the start of the connection` : `${call.callsMissedBefore} calls lost at the start of the connection`);
    for (const kind of kinds) {
      if (kind === StartKind.Http1Response) {
        return this.detectFailed(conn, 'mid-connection', 'an HTTP/1.x response came before any request');
      }
      if (kind === StartKind.Http2Frame) {
        return this.detectFailed(conn, 'mid-connection', 'HTTP/2 frames without the connection preface');
      }
      if (kind === StartKind.Other) {
        return this.detectFailed(conn, 'not-http', 'no HTTP/1.x request line or HTTP/2 preface at the start');
      }
    }
    if (conn.held.length >= MAX_HELD_CALLS) {
      this.detectFailed(conn, 'not-http', `no HTTP request within the first ${MAX_HELD_CALLS} calls`);
    }
  }

  private startHttp(conn: Conn, requestDir: Direction, h2: boolean): void {
    conn.mode = Mode.Http;
    conn.requestDir = requestDir;
    conn.info.role = requestDir === 'write' ? 'client' : 'server';
    if (h2) {
      conn.decoder = new Http2Decoder(this, conn.info, this.opts);
      this.stats.http2Connections++;
    } else {
      conn.decoder = new Http1Decoder(this, conn.info, this.opts);
      this.stats.http1Connections++;
    }
    const held = conn.held;
    conn.held = [];
    conn.start = [EMPTY, EMPTY];
    for (let i = 0; i < held.length; i++) {
      if (conn.mode !== Mode.Http) {
        this.emitRaw(held[i]!, conn);
        continue;
      }
      this.feed(conn, held[i]!);
    }
  }

  private detectFailed(conn: Conn, reason: FallbackReason, detail: string): void {
    const held = conn.held;
    if (held.length > 0) conn.info.role = guessRole(conn.info, held[0]!.dir);
    conn.held = [];
    conn.start = [EMPTY, EMPTY];
    this.toRaw(conn, reason, detail, held[0]?.tsNs ?? 0n);
    for (const call of held) this.emitRaw(call, conn);
  }

  /** Feeds one call to the connection's decoder; a failure turns the connection raw. */
  private feed(conn: Conn, call: TlsCall): void {
    const side = call.dir === conn.requestDir ? Side.Request : Side.Response;
    const decoder = conn.decoder!;
    let fedUpTo = 0; // bytes of call.data the decoder took
    let fed = false;
    try {
      if (call.callsMissedBefore) {
        throw new HttpDecodeError('gap', `${call.callsMissedBefore} earlier calls of this connection were dropped`);
      }
      if (call.lost > 0 && call.holes === undefined) {
        // Where the lost bytes sat in the call is unknown, so is the stream position after them.
        throw new HttpDecodeError('gap', `${call.lost} bytes lost in a ${call.func} of ${call.totalLen} bytes`);
      }
      if (call.holes === undefined) {
        decoder.feed(side, call, call.data);
      } else {
        // Lost chunks (ring buffer full) are gaps at known places: fed around, like --max-bytes cuts.
        walkHoles(
          call,
          (piece) => {
            decoder.feed(side, call, piece);
            fedUpTo += piece.length;
          },
          (length) => decoder.gap(side, length, `${length} bytes lost (ring buffer full) in a ${call.func} of ${call.totalLen} bytes`),
        );
      }
      fed = true;
      // Truncated bytes are all at the call's end: the stream position after them is known.
      if (call.truncated > 0) decoder.gap(side, call.truncated, `${call.truncated} bytes truncated (--max-bytes) in a ${call.func} of ${call.totalLen} bytes`);
    } catch (err) {
      const e = err instanceof HttpDecodeError ? err : new HttpDecodeError('malformed', `decoder failure: ${(err as Error).message}`);
      // What the decoder did not take is shown raw.
      this.fail(conn, e, fedUpTo > 0 && !fed ? { ...call, data: call.data.subarray(fedUpTo), holes: undefined } : call, fed);
    }
  }

  /** Decoding of `conn` ends at `call`; its bytes are shown raw unless the decoder took them all (`fed`). */
  private fail(conn: Conn, err: HttpDecodeError, call: TlsCall, fed = false): void {
    const decoder = conn.decoder!;
    conn.decoder = undefined;
    if (err.reason === 'hpack') this.stats.hpackErrors++;
    this.collectBlocks(decoder);
    const note = err.reason === 'upgrade' ? `switched to ${err.message}` : `${FALLBACK_REASONS[err.reason]}: ${err.message}`;
    try {
      decoder.abort(note);
    } catch {
      // Half-built exchanges are lost with the decoder.
    }
    this.toRaw(conn, err.reason, err.message, call.tsNs);
    if (err.reason === 'upgrade') {
      if (err.rest !== undefined && err.rest.length > 0) this.emitRaw({ ...call, data: err.rest, totalLen: err.rest.length }, conn);
    } else if (!fed) {
      this.emitRaw(call, conn);
    }
  }

  private collectBlocks(decoder: Http1Decoder | Http2Decoder): void {
    if (decoder instanceof Http2Decoder) this.stats.headerBlocks += decoder.headerBlocks;
  }

  private toRaw(conn: Conn, reason: FallbackReason, detail: string, tsNs: bigint): void {
    conn.mode = Mode.Raw;
    this.stats.fallbacks[reason]++;
    for (const l of this.listeners) {
      try {
        l.fallback?.({ conn: conn.info, reason, detail, tsNs });
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  private emitRaw(call: TlsCall, conn: Conn): void {
    for (const l of this.listeners) {
      if (l.raw === undefined) continue;
      try {
        l.raw(call, conn.info);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** The connection is over: flush its decoder, or show what detection still held. */
  private finish(conn: Conn, why: string): void {
    if (conn.mode === Mode.Http && conn.decoder !== undefined) {
      try {
        conn.decoder.end(why);
      } catch {
        // Nothing more can be had from it.
      }
      this.collectBlocks(conn.decoder);
      conn.decoder = undefined;
    } else if (conn.mode === Mode.Detecting && conn.held.length > 0) {
      this.detectFailed(conn, 'not-http', `the connection ended before it showed an HTTP request (${why})`);
    }
    conn.mode = Mode.Raw;
  }
}
