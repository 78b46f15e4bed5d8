// The web view's store: a tracker listener that writes every exchange and every raw call to the
// spool and keeps a compact, bounded index of them in memory (the rows of the page's list, the
// connections, the losses). Nothing here blocks the capture: a write to the spool is the only work.

import type { CaptureContext, CaptureStats, TlsCall } from '../events/types.js';
import { decodeBody } from '../http/body.js';
import { headerValue } from '../http/message.js';
import { redactHeaders } from '../http/redact.js';
import type { FallbackReason, HttpBody, HttpConnection, HttpExchange, HttpFallback, HttpListener, HttpStats } from '../http/types.js';
import { CallArchive } from './calls.js';
import { Spool } from './spool.js';
import type { SpoolSpan } from './spool.js';

/** The columns of a row, in the order rows are sent to the page. */
export const ROW_FIELDS = ['seq', 'time', 'pid', 'process', 'method', 'host', 'path', 'status', 'size', 'duration', 'protocol', 'conn', 'stream', 'incomplete'] as const;

/** One exchange in the list: values in ROW_FIELDS order (time in wall-clock ms, duration in ms). */
export type Row = [number, number, number, string, string, string, string, number, number, number, string, string, number, string];

/** A connection as the page lists it. */
export interface ConnSummary {
  key: string;
  pid: number;
  process: string;
  local?: string;
  remote?: string;
  protocol: 'HTTP/1' | 'HTTP/2' | 'raw' | 'unknown';
  exchanges: number;
  calls: number;
  bytesWritten: number;
  bytesRead: number;
  lost: number;
  truncated: number;
  fallback?: string;
}

/** One item of a connection's follow-stream view. */
export type ConnItem = { kind: 'exchange'; seq: number; time: number } | { kind: 'call'; n: number; dir: 'write' | 'read'; time: number; len: number; totalLen: number; lost: number; truncated: number };

/** Losses the page shows next to the list. */
export interface Losses {
  incompleteExchanges: number;
  fallbacks: Record<FallbackReason, number>;
  lostBytes: number;
  truncatedBytes: number;
  callsMissed: number;
  /** Exchanges and calls past the index bound: captured, but not listed. */
  notIndexed: number;
  /** The capture's own counters, once it ended (ring-buffer drops and the rest). */
  capture?: CaptureStats;
}

/** Options of a WebStore. */
export interface WebStoreOptions {
  redact: boolean;
  /** Rows (exchanges) and calls kept in the index at most (default 2 000 000 each). */
  maxIndexed?: number;
  /** The spool's directory (default the system temp dir). */
  spoolDir?: string;
}

interface ConnEntry {
  summary: ConnSummary;
  items: ConnItem[];
  calls: SpoolSpan[];
}

interface Spooled {
  meta: SpoolSpan;
}

const te = new TextEncoder();

function endpoint(e: HttpConnection['local']): string | undefined {
  if (e === undefined) return undefined;
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

/** The key of an exchange's or a call's connection, the same for both. */
export function connKey(conn: HttpConnection): string {
  return conn.id !== undefined ? String(conn.id) : `${conn.pid}:${conn.ssl.toString(16)}`;
}

function msBetween(from: bigint, to: bigint | undefined): number {
  return to === undefined || to < from ? 0 : Number((to - from) / 1000n) / 1000;
}

/** Stores what the tracker rebuilds, for the web view. */
export class WebStore implements HttpListener {
  readonly rows: Row[] = [];
  readonly losses: Losses;
  /** Called (synchronously, cheaply) when rows or connections changed. */
  onChange: (() => void) | undefined;
  ended = false;
  private readonly spooled: Spooled[] = [];
  private readonly seqIndex = new Map<number, number>();
  private readonly conns = new Map<string, ConnEntry>();
  private readonly changedConns = new Set<string>();
  private readonly max: number;
  private callsIndexed = 0;
  readonly spool: Spool;
  /** Every call and connection event, for the pcapng download. */
  readonly calls: CallArchive;
  httpStats: HttpStats | undefined;

  constructor(
    private readonly ctx: CaptureContext,
    private readonly opts: WebStoreOptions,
  ) {
    this.spool = new Spool(opts.spoolDir);
    this.calls = new CallArchive(this.spool, ctx);
    this.max = opts.maxIndexed ?? 2_000_000;
    this.losses = { incompleteExchanges: 0, fallbacks: {} as Record<FallbackReason, number>, lostBytes: 0, truncatedBytes: 0, callsMissed: 0, notIndexed: 0 };
  }

  /** A completed exchange: its bodies and details to the spool, its row to the index. */
  exchange(ex: HttpExchange): void {
    if (ex.incomplete !== undefined) this.losses.incompleteExchanges++;
    if (this.rows.length >= this.max) {
      this.losses.notIndexed++;
      return;
    }
    const entry = this.connFor(ex.conn);
    const s = entry.summary;
    s.protocol = ex.httpVersion === 'HTTP/2' ? 'HTTP/2' : 'HTTP/1';
    s.exchanges++;
    // The details as JSON (bigints tagged), the body bytes beside them in the spool.
    const spanned = {
      ...ex,
      request: { ...ex.request, body: this.spoolBody(ex.request.body) },
      response: ex.response && { ...ex.response, body: this.spoolBody(ex.response.body) },
    };
    const meta = JSON.stringify(spanned, (_key, value: unknown) => (typeof value === 'bigint' ? { $big: value.toString() } : value));
    this.spooled.push({ meta: this.spool.append(te.encode(meta)) });
    const t = ex.timings;
    const time = Number(this.ctx.wallClockNs(t.requestStartNs) / 1000n) / 1000;
    let host = '';
    let path = ex.request.target;
    try {
      const url = new URL(ex.request.url);
      host = url.host;
      path = url.pathname + url.search;
    } catch {
      host = headerValue(ex.request.headers, 'host') ?? '';
    }
    this.seqIndex.set(ex.seq, this.rows.length);
    this.rows.push([
      ex.seq,
      time,
      ex.conn.pid,
      ex.conn.comm,
      ex.request.method,
      host,
      path,
      ex.response?.status ?? 0,
      ex.response?.body.size ?? 0,
      msBetween(t.requestStartNs, t.responseEndNs ?? t.requestEndNs),
      ex.httpVersion,
      connKey(ex.conn),
      ex.streamId ?? -1,
      ex.incomplete ?? '',
    ]);
    entry.items.push({ kind: 'exchange', seq: ex.seq, time });
    this.changedConns.add(s.key);
    this.onChange?.();
  }

  /** A connection falls back to raw bytes: noted on it, counted as a loss when bytes were missing. */
  fallback(f: HttpFallback): void {
    this.losses.fallbacks[f.reason] = (this.losses.fallbacks[f.reason] ?? 0) + 1;
    const entry = this.connFor(f.conn);
    entry.summary.fallback = `${f.reason}: ${f.detail}`;
    this.changedConns.add(entry.summary.key);
    this.onChange?.();
  }

  /** A call on a connection not decoded as HTTP: its bytes to the spool, its place in the connection. */
  raw(call: TlsCall, conn: HttpConnection): void {
    this.losses.lostBytes += call.lost;
    this.losses.truncatedBytes += call.truncated;
    this.losses.callsMissed += call.callsMissedBefore ?? 0;
    const entry = this.connFor(conn);
    const s = entry.summary;
    if (s.protocol === 'unknown') s.protocol = 'raw';
    s.calls++;
    s.lost += call.lost;
    s.truncated += call.truncated;
    if (call.dir === 'write') s.bytesWritten += call.totalLen;
    else s.bytesRead += call.totalLen;
    this.changedConns.add(s.key);
    if (this.callsIndexed >= this.max) {
      this.losses.notIndexed++;
      return;
    }
    this.callsIndexed++;
    entry.calls.push(this.spool.append(call.data));
    entry.items.push({
      kind: 'call',
      n: entry.calls.length - 1,
      dir: call.dir,
      time: Number(this.ctx.wallClockNs(call.tsNs) / 1000n) / 1000,
      len: call.data.length,
      totalLen: call.totalLen,
      lost: call.lost,
      truncated: call.truncated,
    });
    this.onChange?.();
  }

  /** The tracker flushed everything. */
  end(stats: HttpStats): void {
    this.httpStats = stats;
    this.ended = true;
    this.onChange?.();
  }

  /** Rows with seq above `after`, in completion order. */
  rowsAfter(after: number): Row[] {
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.rows[mid]![0] <= after) lo = mid + 1;
      else hi = mid;
    }
    return this.rows.slice(lo);
  }

  /** The row of exchange `seq`. */
  rowAt(seq: number): Row | undefined {
    const i = this.seqIndex.get(seq);
    return i === undefined ? undefined : this.rows[i];
  }

  /** Every connection's summary. */
  connections(): ConnSummary[] {
    return [...this.conns.values()].map((c) => c.summary);
  }

  /** The summaries of connections changed since the last call. */
  takeChangedConnections(): ConnSummary[] {
    const out = [...this.changedConns].map((k) => this.conns.get(k)!.summary);
    this.changedConns.clear();
    return out;
  }

  /** A connection's exchanges and raw calls in order. */
  connection(key: string): { conn: ConnSummary; items: ConnItem[] } | undefined {
    const c = this.conns.get(key);
    return c && { conn: c.summary, items: c.items };
  }

  /** The captured bytes of a connection's n-th raw call. */
  callBytes(key: string, n: number): Buffer | undefined {
    const span = this.conns.get(key)?.calls[n];
    return span && this.spool.read(span);
  }

  /** The exchange `seq` read back from the spool, bodies included, as the tracker gave it. */
  exchangeAt(seq: number): HttpExchange | undefined {
    const i = this.seqIndex.get(seq);
    if (i === undefined) return undefined;
    type Spanned = { size: number; complete: boolean; span?: SpoolSpan };
    const parsed = JSON.parse(this.spool.read(this.spooled[i]!.meta).toString('utf8'), (_key, value: unknown) => {
      if (value !== null && typeof value === 'object' && '$big' in value) return BigInt((value as { $big: string }).$big);
      return value;
    }) as HttpExchange;
    const unspool = (b: HttpBody): HttpBody => {
      const { size, complete, span } = b as unknown as Spanned;
      return { size, complete, bytes: span === undefined || span.len === 0 ? Buffer.alloc(0) : this.spool.read(span) };
    };
    parsed.request.body = unspool(parsed.request.body);
    if (parsed.response) parsed.response.body = unspool(parsed.response.body);
    return parsed;
  }

  /** The detail the page shows for an exchange: headers (redacted under --redact), timings, notes. */
  detail(seq: number): Record<string, unknown> | undefined {
    const ex = this.exchangeAt(seq);
    if (ex === undefined) return undefined;
    const wall = (ns: bigint | undefined) => (ns === undefined ? undefined : Number(this.ctx.wallClockNs(ns) / 1000n) / 1000);
    const body = (b: HttpBody, headers: HttpExchange['request']['headers']) => {
      const decoded = decodeBody(b, headers);
      return { size: b.size, captured: b.bytes.length, complete: b.complete, decodedSize: decoded.bytes.length, text: decoded.text, encoding: decoded.encoding, note: decoded.note, mimeType: headerValue(headers, 'content-type') ?? '' };
    };
    const req = ex.request;
    const res = ex.response;
    return {
      seq,
      httpVersion: ex.httpVersion,
      streamId: ex.streamId,
      pushed: ex.pushed,
      conn: { key: connKey(ex.conn), pid: ex.conn.pid, process: ex.conn.comm, role: ex.conn.role, local: endpoint(ex.conn.local), remote: endpoint(ex.conn.remote) },
      request: { method: req.method, url: req.url, target: req.target, headers: redactHeaders(req.headers, this.opts.redact), trailers: redactHeaders(req.trailers, this.opts.redact), body: body(req.body, req.headers) },
      response: res && {
        status: res.status,
        statusText: res.statusText,
        headers: redactHeaders(res.headers, this.opts.redact),
        trailers: redactHeaders(res.trailers, this.opts.redact),
        interim: res.interim.map((i) => ({ status: i.status, headers: redactHeaders(i.headers, this.opts.redact) })),
        body: body(res.body, res.headers),
      },
      timings: { requestStart: wall(ex.timings.requestStartNs), requestEnd: wall(ex.timings.requestEndNs), responseStart: wall(ex.timings.responseStartNs), responseEnd: wall(ex.timings.responseEndNs) },
      incomplete: ex.incomplete,
      notes: ex.notes,
    };
  }

  /** A body as the page shows it: content-decoded (gzip, br ...), as in HAR. */
  body(seq: number, side: 'request' | 'response'): Buffer | undefined {
    const ex = this.exchangeAt(seq);
    const message = side === 'request' ? ex?.request : ex?.response;
    return message && decodeBody(message.body, message.headers).bytes;
  }

  /** The seqs of exchanges whose (redacted) headers or bodies contain `text`, case-insensitively. */
  search(text: string): number[] {
    const needle = text.toLowerCase();
    const out: number[] = [];
    for (const row of this.rows) {
      const ex = this.exchangeAt(row[0])!;
      const parts = [ex.request.url, ...this.headerLines(ex)];
      for (const m of [ex.request, ex.response]) {
        if (m && m.body.bytes.length > 0) {
          const d = decodeBody(m.body, m.headers);
          if (d.text) parts.push(d.bytes.toString('utf8'));
        }
      }
      if (parts.some((p) => p.toLowerCase().includes(needle))) out.push(row[0]);
    }
    return out;
  }

  /** Deletes the spool. */
  remove(): void {
    this.spool.remove();
  }

  private headerLines(ex: HttpExchange): string[] {
    const all = [...ex.request.headers, ...(ex.response?.headers ?? [])];
    return redactHeaders(all, this.opts.redact).map((h) => `${h.name}: ${h.value}`);
  }

  /** A body's bytes to the spool: its size and completeness stay, the bytes become a span. */
  private spoolBody(body: HttpBody): { size: number; complete: boolean; span?: SpoolSpan } {
    return { size: body.size, complete: body.complete, span: body.bytes.length === 0 ? undefined : this.spool.append(body.bytes) };
  }

  private connFor(conn: HttpConnection): ConnEntry {
    const key = connKey(conn);
    let entry = this.conns.get(key);
    if (entry === undefined) {
      entry = {
        summary: { key, pid: conn.pid, process: conn.comm, local: endpoint(conn.local), remote: endpoint(conn.remote), protocol: 'unknown', exchanges: 0, calls: 0, bytesWritten: 0, bytesRead: 0, lost: 0, truncated: 0 },
        items: [],
        calls: [],
      };
      this.conns.set(key, entry);
    }
    return entry;
  }
}
