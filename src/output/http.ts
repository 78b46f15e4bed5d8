// `-f http`: one block per HTTP exchange (request line, headers, body preview, status, latency,
// process and connection); connections that are not HTTP are shown like `-f text`, after a note.
// Also the jsonl `http` records, added to a jsonl sink.

import type { CaptureContext, ConnectionEvent, TlsCall } from '../events/types.js';
import { decodeBody } from '../http/body.js';
import { formatEndpoint } from '../events/addresses.js';
import { formatHttpSummary, httpFallbackRecord, httpRecord, httpSummaryRecord } from '../http/record.js';
import { redactHeaders } from '../http/redact.js';
import type { HttpTracker } from '../http/tracker.js';
import type { HttpBody, HttpConnection, HttpExchange, HttpFallback, HttpHeader, HttpListener, HttpStats } from '../http/types.js';
import { BatchWriter } from './batch.js';
import { BodyJsonWriter } from './body-json.js';
import type { OutputStream } from './batch.js';
import { escapePayload, previewEnd } from './escape.js';
import { hexdump } from './hexdump.js';
import { LineOutput } from './index.js';
import type { FormatSink } from './index.js';
import { LocalClock, TextFormat } from './text.js';

/** Options of createHttpSink. */
export interface HttpSinkOptions {
  /** ANSI colour (the CLI asks for it on a TTY without NO_COLOR). */
  color: boolean;
  /** Mask credential headers (--redact). */
  redact: boolean;
  /** Body bytes shown per message (default 1024); binary bodies show at most 64 as hex. */
  maxBodyPreview?: number;
  /** The tracker this output listens to (fed by the pipeline, shared with --har and jsonl). */
  tracker: HttpTracker;
  /** Called once when the stream fails; `isBrokenPipe(error)` means the reader went away. */
  onClosed?: (error: NodeJS.ErrnoException) => void;
  /** Batched bytes that trigger a write (default 256 KiB). */
  flushBytes?: number;
  /** Longest delay before batched text is written (default 20 ms). */
  flushDelayMs?: number;
}

/**
 * The `-f http` output: a listener of a tracker, which feeds it and closes it; it takes no calls
 * itself. needsDrain/drained/error are its stream's.
 */
export interface HttpSink extends HttpListener {
  /** The tracker this output listens to. */
  readonly tracker: HttpTracker;
  readonly needsDrain: boolean;
  drained(): Promise<void>;
  /** Writes a line of the caller's own, in order with the exchanges. */
  writeLine(line: string): void;
  /** Flushes what is batched (called by the tracker when it closes); does not end the stream. */
  close(): Promise<void>;
  readonly error: NodeJS.ErrnoException | undefined;
  /** The HTTP counters for the summary. */
  readonly stats: HttpStats;
}

const ESC = '\x1b[';
const PALETTE = {
  reset: `${ESC}0m`,
  dim: `${ESC}2m`,
  bold: `${ESC}1m`,
  green: `${ESC}32m`,
  cyan: `${ESC}36m`,
  yellow: `${ESC}33m`,
  red: `${ESC}31m`,
  magenta: `${ESC}35m`,
};
type Palette = typeof PALETTE;
const NO_COLOR: Palette = { reset: '', dim: '', bold: '', green: '', cyan: '', yellow: '', red: '', magenta: '' };

/** Binary bodies: bytes shown as hex at most. */
const HEX_PREVIEW = 64;

/** Control characters (other than tab) that must not reach a terminal from a header. */
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

function safe(text: string): string {
  return text.replace(UNSAFE, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** Milliseconds with a sensible precision. */
export function formatMs(ns: bigint): string {
  const ms = Number(ns) / 1e6;
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`;
}

/** `curl pid=1234 conn=3 10.0.0.1:40000 → 127.0.0.1:443` (arrow from client to server). */
export function connectionLabel(conn: HttpConnection): string {
  let s = `${safe(conn.comm)} pid=${conn.pid}`;
  if (conn.id !== undefined) s += ` conn=${conn.id}`;
  else s += ` ssl=0x${conn.ssl.toString(16)}`;
  if (conn.local !== undefined && conn.remote !== undefined) {
    const [client, server] = conn.role === 'client' ? [conn.local, conn.remote] : [conn.remote, conn.local];
    s += ` ${formatEndpoint(client)} → ${formatEndpoint(server)}`;
  }
  return `${s} (${conn.role})`;
}

/** Formats exchanges as the `-f http` blocks. */
export class ExchangeFormatter {
  private readonly clock = new LocalClock();
  private readonly c: Palette;
  private readonly maxBody: number;
  private readonly redact: boolean;

  constructor(
    private readonly ctx: CaptureContext,
    opts: { color: boolean; redact: boolean; maxBodyPreview?: number },
  ) {
    this.redact = opts.redact;
    this.c = opts.color ? PALETTE : NO_COLOR;
    this.maxBody = opts.maxBodyPreview ?? 1024;
  }

  /** The block for one exchange, ending with a blank line. */
  format(ex: HttpExchange): string {
    const c = this.c;
    const t = ex.timings;
    const req = ex.request;
    const res = ex.response;
    let out =
      `${c.dim}${this.clock.format(this.ctx.wallClockNs(t.requestStartNs))} #${ex.seq} ${connectionLabel(ex.conn)}` +
      `${ex.streamId !== undefined ? ` stream ${ex.streamId}` : ''}${ex.pushed ? ' (server push)' : ''}${c.reset}\n`;
    out += `${c.bold}${c.cyan}${safe(req.method)}${c.reset} ${c.bold}${safe(req.url)}${c.reset} ${c.dim}${ex.httpVersion}${c.reset}\n`;
    out += this.headers(req.headers);
    out += this.body(req.body, req.headers, req.trailers);
    if (res !== undefined) {
      for (const i of res.interim) out += `${c.dim}← ${i.status} (interim)${c.reset}\n${this.headers(i.headers)}`;
      const color = res.status >= 500 ? c.red : res.status >= 400 ? c.yellow : res.status >= 300 ? c.magenta : c.green;
      let timing = '';
      if (t.responseStartNs !== undefined && t.responseEndNs !== undefined) {
        timing = `  ${c.dim}${formatMs(t.responseEndNs - t.requestStartNs)} (first byte after ${formatMs(t.responseStartNs - t.requestEndNs)})${c.reset}`;
      }
      out += `${color}${c.bold}← ${res.status}${res.statusText ? ` ${safe(res.statusText)}` : ''}${c.reset}${timing}\n`;
      out += this.headers(res.headers);
      out += this.body(res.body, res.headers, res.trailers);
    }
    if (ex.incomplete !== undefined) out += `${c.red}! incomplete: ${safe(ex.incomplete)}${c.reset}\n`;
    for (const note of ex.notes) out += `${c.yellow}# ${safe(note)}${c.reset}\n`;
    return `${out}\n`;
  }

  /** The note printed once when a connection falls back to raw. */
  fallback(f: HttpFallback): string {
    const c = this.c;
    return (
      `${c.yellow}# ${this.clock.format(this.ctx.wallClockNs(f.tsNs))} ${connectionLabel(f.conn)}: ` +
      `shown raw from here (${f.reason}: ${safe(f.detail)})${c.reset}\n\n`
    );
  }

  /** The note that a raw connection's later calls are not shown, only counted. */
  rawHidden(conn: HttpConnection, what: string): string {
    const c = this.c;
    return `${c.yellow}# ${connectionLabel(conn)}: raw calls after the first ${RAW_SHOWN_BYTES / 1024} KiB not shown, ${what} (-f text shows every call)${c.reset}\n\n`;
  }

  private headers(headers: HttpHeader[]): string {
    const c = this.c;
    let out = '';
    for (const h of redactHeaders(headers, this.redact)) {
      // Pseudo-headers are already in the request and status lines.
      if (h.name.startsWith(':')) continue;
      out += `  ${c.dim}${safe(h.name)}:${c.reset} ${safe(h.value)}\n`;
    }
    return out;
  }

  private body(body: HttpBody, headers: HttpHeader[], trailers: HttpHeader[]): string {
    const c = this.c;
    if (body.size === 0 && body.complete) return trailers.length > 0 ? this.trailers(trailers) : '';
    const decoded = decodeBody(body, headers);
    let meta = `body ${plural(body.size, 'byte')}`;
    if (decoded.encoding !== undefined) meta += `, ${decoded.encoding} → ${plural(decoded.bytes.length, 'byte')}`;
    if (!body.complete) meta += body.missing ? `, incomplete: ${plural(body.missing, 'byte')} not captured` : ', incomplete';
    if (decoded.note !== undefined) meta += `; ${decoded.note}`;
    let out = `  ${c.dim}[${safe(meta)}]${c.reset}\n`;
    const data = decoded.bytes;
    if (data.length > 0 && this.maxBody > 0) {
      if (decoded.text) {
        const end = previewEnd(data, this.maxBody);
        const text = escapePayload(data, 0, end);
        out += text.endsWith('\n') ? text : `${text}\n`;
        if (end < data.length) out += `  ${c.dim}[${plural(data.length - end, 'more byte')} not shown]${c.reset}\n`;
      } else {
        const end = Math.min(data.length, HEX_PREVIEW, this.maxBody);
        out += hexdump(data, end);
        out += `  ${c.dim}[binary, ${plural(data.length, 'byte')}${end < data.length ? `, first ${end} shown` : ''}]${c.reset}\n`;
      }
    }
    return out + this.trailers(trailers);
  }

  private trailers(trailers: HttpHeader[]): string {
    if (trailers.length === 0) return '';
    return `  ${this.c.dim}[trailers]${this.c.reset}\n${this.headers(trailers)}`;
  }
}

/** Captured bytes of a connection shown raw in `-f http` before the rest is only counted. */
export const RAW_SHOWN_BYTES = 64 * 1024;

/** What `-f http` has shown and held back of one raw connection. */
interface RawShown {
  conn: HttpConnection;
  bytes: number;
  hiddenCalls: number;
  hiddenBytes: number;
}

/** The `-f http` output. */
class HttpFormatSink extends LineOutput implements HttpSink {
  private readonly formatter: ExchangeFormatter;
  private readonly rawText: TextFormat;
  /** Raw connections by their HttpConnection object (one per connection in the tracker). */
  private readonly rawShown = new Map<HttpConnection, RawShown>();

  constructor(
    readonly tracker: HttpTracker,
    writer: BatchWriter,
    ctx: CaptureContext,
    opts: HttpSinkOptions,
  ) {
    super(writer);
    this.formatter = new ExchangeFormatter(ctx, opts);
    this.rawText = new TextFormat(ctx, opts.color, opts.maxBodyPreview ?? 1024);
    tracker.subscribe(this);
  }

  get stats(): HttpStats {
    return this.tracker.stats;
  }

  // HttpListener

  exchange(ex: HttpExchange): void {
    if (this.writer.error !== undefined) return;
    this.writer.writeString(this.formatter.format(ex));
    this.writer.commit();
  }

  fallback(f: HttpFallback): void {
    if (this.writer.error !== undefined) return;
    this.writer.writeString(this.formatter.fallback(f));
    this.writer.commit();
  }

  /**
   * A call on a connection that is not HTTP, shown as -f text does, until RAW_SHOWN_BYTES of the
   * connection were shown; later calls are counted, and the count is printed at the end.
   */
  raw(call: TlsCall, conn: HttpConnection): void {
    if (this.writer.error !== undefined) return;
    let shown = this.rawShown.get(conn);
    if (shown === undefined) this.rawShown.set(conn, (shown = { conn, bytes: 0, hiddenCalls: 0, hiddenBytes: 0 }));
    if (shown.bytes >= RAW_SHOWN_BYTES) {
      if (shown.hiddenCalls === 0) {
        this.writer.writeString(this.formatter.rawHidden(conn, 'from here'));
        this.writer.commit();
      }
      shown.hiddenCalls++;
      shown.hiddenBytes += call.data.length;
      return;
    }
    shown.bytes += call.data.length;
    this.rawText.encode(call, this.writer);
    this.writer.commit();
  }

  /** The counts of raw calls held back, per connection. */
  end(): void {
    if (this.writer.error !== undefined) return;
    for (const s of this.rawShown.values()) {
      if (s.hiddenCalls === 0) continue;
      this.writer.writeString(this.formatter.rawHidden(s.conn, `${plural(s.hiddenCalls, 'call')} (${plural(s.hiddenBytes, 'byte')}) in all`));
    }
    this.writer.commit();
  }
}

/** `-f http` on `out`, listening to `opts.tracker`: one block per exchange, raw calls for what is not HTTP; close() does not end `out`. */
export function createHttpSink(out: OutputStream, ctx: CaptureContext, opts: HttpSinkOptions): HttpSink {
  const preview = opts.maxBodyPreview ?? 1024;
  if (!(preview >= 0)) throw new RangeError(`maxBodyPreview must be >= 0, got ${opts.maxBodyPreview}`);
  const writer = new BatchWriter(out, { onClosed: opts.onClosed, flushBytes: opts.flushBytes, flushDelayMs: opts.flushDelayMs });
  return new HttpFormatSink(opts.tracker, writer, ctx, opts);
}

/** Options of withHttpRecords. */
export interface HttpRecordOptions {
  redact: boolean;
  /** The tracker the records come from (fed by the pipeline, not by this sink). */
  tracker: HttpTracker;
  /** Also write one `http_summary` line when the tracker ends (default true). */
  summary?: boolean;
}

/** A jsonl sink that also carries http records: the wrapped sink plus the tracker's stats. */
export interface HttpJsonlSink extends FormatSink {
  readonly tracker: HttpTracker;
  readonly stats: HttpStats;
}

/**
 * Wraps a `jsonl` FormatSink: every call still goes to it as a `data` line, and each exchange the
 * tracker decodes adds a `{"type":"http",...}` line (HttpRecord), each raw fallback a
 * `http_fallback` line, and its end a final `http_summary` line. The tracker is fed by the
 * pipeline (after this sink, so a call's `data` line precedes the records it completes); close()
 * closes the tracker first, so its last records precede the end of the stream.
 */
export function withHttpRecords(jsonl: FormatSink, ctx: CaptureContext, opts: HttpRecordOptions): HttpJsonlSink {
  const tracker = opts.tracker;
  const records = new BodyJsonWriter();
  tracker.subscribe({
    exchange(ex) {
      jsonl.writeEncoded((target) => records.write(httpRecord(ex, ctx, opts, records.strings), target, '', '\n'));
    },
    fallback(f) {
      jsonl.writeLine(JSON.stringify(httpFallbackRecord(f, ctx)));
    },
    end(stats) {
      if (opts.summary !== false) jsonl.writeLine(JSON.stringify(httpSummaryRecord(stats)));
    },
  });
  return {
    tracker,
    get stats() {
      return tracker.stats;
    },
    get needsDrain() {
      return jsonl.needsDrain;
    },
    get error() {
      return jsonl.error;
    },
    write(call: TlsCall) {
      jsonl.write(call);
    },
    connection(event: ConnectionEvent) {
      jsonl.connection?.(event);
    },
    writeLine(line: string) {
      jsonl.writeLine(line);
    },
    writeEncoded(encode) {
      jsonl.writeEncoded(encode);
    },
    drained() {
      return jsonl.drained();
    },
    async close() {
      // Another listener's failing output (a --har on a full disk) is for the tracker's closer to report.
      await tracker.close().catch(() => undefined);
      await jsonl.close();
    },
  };
}

export { formatHttpSummary };
