// The `type: "http"` records of the jsonl format: one JSON object per exchange.

import type { CaptureContext, Endpoint } from '../events/types.js';
import { PLAIN_BODY_STRINGS, decodeBody } from './body.js';
import type { BodyStrings } from './body.js';
import { formatEndpoint } from '../events/addresses.js';
import { redactHeaders } from './redact.js';
import type { HttpBody, HttpFallback, HttpHeader, HttpStats, HttpExchange } from './types.js';

/** A message body in a record: sizes, and the content as text or base64. */
export interface HttpBodyRecord {
  /** Body bytes on the wire (after chunked/DATA framing, before content decoding). */
  size: number;
  /** Bytes captured and kept of those. */
  captured: number;
  complete: boolean;
  /** Body bytes that went by uncaptured (counted in size, absent from the content). */
  missing?: number;
  /** The Content-Encoding undone for `text`/`base64`, when one was. */
  content_encoding?: string;
  /** Size after content decoding. */
  decoded_size?: number;
  /** Why the content is as sent, or partial. */
  note?: string;
  /** The (decoded) body when it is UTF-8 text ... */
  text?: string;
  /** ... else base64. */
  base64?: string;
}

/** The connection fields of http records. */
export interface HttpConnRecord {
  id: number | null;
  pid: number;
  comm: string;
  ssl: string;
  role: 'client' | 'server';
  local: string | null;
  remote: string | null;
}

/** What a `type: "http"` line holds. */
export interface HttpRecord {
  type: 'http';
  seq: number;
  /** Wall clock of the request's first byte, ISO-8601 UTC with microseconds. */
  ts: string;
  http_version: string;
  conn: HttpConnRecord;
  stream_id?: number;
  pushed?: boolean;
  request: {
    method: string;
    url: string;
    target: string;
    headers: HttpHeader[];
    trailers?: HttpHeader[];
    body: HttpBodyRecord;
  };
  response: {
    status: number;
    status_text: string;
    headers: HttpHeader[];
    trailers?: HttpHeader[];
    interim?: { status: number; headers: HttpHeader[] }[];
    body: HttpBodyRecord;
  } | null;
  /** CLOCK_MONOTONIC nanoseconds as decimal strings; null when not captured. */
  timings: {
    request_start_ns: string;
    request_end_ns: string;
    response_start_ns: string | null;
    response_end_ns: string | null;
    /** Request start to response end, milliseconds. */
    duration_ms: number | null;
  };
  incomplete?: string;
  notes?: string[];
}

/** A `type: "http_fallback"` line: a connection shown raw from here on, and why. */
export interface HttpFallbackRecord {
  type: 'http_fallback';
  ts: string;
  conn: HttpConnRecord;
  reason: string;
  detail: string;
}

/** The `type: "http_summary"` line: the counters of HttpStats. */
export interface HttpSummaryRecord extends HttpStats {
  type: 'http_summary';
}

function endpoint(ep: Endpoint | undefined): string | null {
  return ep === undefined ? null : formatEndpoint(ep);
}

/** ISO-8601 UTC with microseconds for wall-clock nanoseconds. */
export function isoMicros(wallNs: bigint): string {
  const us = wallNs / 1000n;
  const ms = Number(us / 1000n);
  const micro = Number(us % 1000n);
  return `${new Date(ms).toISOString().slice(0, -1)}${String(micro).padStart(3, '0')}Z`;
}

/** The connection part of http records. */
export function connRecord(conn: HttpExchange['conn']): HttpConnRecord {
  return {
    id: conn.id ?? null,
    pid: conn.pid,
    comm: conn.comm,
    ssl: `0x${conn.ssl.toString(16)}`,
    role: conn.role,
    local: endpoint(conn.local),
    remote: endpoint(conn.remote),
  };
}

function bodyRecord(body: HttpBody, headers: HttpHeader[], strings: BodyStrings): HttpBodyRecord {
  const rec: HttpBodyRecord = { size: body.size, captured: body.bytes.length, complete: body.complete };
  if (body.missing !== undefined) rec.missing = body.missing;
  if (body.size === 0) return rec;
  const decoded = decodeBody(body, headers);
  if (decoded.encoding !== undefined) {
    rec.content_encoding = decoded.encoding;
    rec.decoded_size = decoded.bytes.length;
  }
  if (decoded.note !== undefined) rec.note = decoded.note;
  if (decoded.text) rec.text = strings.text(decoded.bytes);
  else rec.base64 = strings.base64(decoded.bytes);
  return rec;
}

/**
 * The jsonl record of one exchange; with `redact`, credential headers are masked. The bodies'
 * strings come from `strings` (stand-ins when a writer encodes the bytes itself).
 */
export function httpRecord(ex: HttpExchange, ctx: CaptureContext, opts: { redact: boolean }, strings: BodyStrings = PLAIN_BODY_STRINGS): HttpRecord {
  const t = ex.timings;
  const req = ex.request;
  const res = ex.response;
  const rec: HttpRecord = {
    type: 'http',
    seq: ex.seq,
    ts: isoMicros(ctx.wallClockNs(t.requestStartNs)),
    http_version: ex.httpVersion,
    conn: connRecord(ex.conn),
    ...(ex.streamId !== undefined ? { stream_id: ex.streamId } : {}),
    ...(ex.pushed ? { pushed: true } : {}),
    request: {
      method: req.method,
      url: req.url,
      target: req.target,
      headers: redactHeaders(req.headers, opts.redact),
      ...(req.trailers.length > 0 ? { trailers: redactHeaders(req.trailers, opts.redact) } : {}),
      body: bodyRecord(req.body, req.headers, strings),
    },
    response:
      res === undefined
        ? null
        : {
            status: res.status,
            status_text: res.statusText,
            headers: redactHeaders(res.headers, opts.redact),
            ...(res.trailers.length > 0 ? { trailers: redactHeaders(res.trailers, opts.redact) } : {}),
            ...(res.interim.length > 0
              ? { interim: res.interim.map((i) => ({ status: i.status, headers: redactHeaders(i.headers, opts.redact) })) }
              : {}),
            body: bodyRecord(res.body, res.headers, strings),
          },
    timings: {
      request_start_ns: String(t.requestStartNs),
      request_end_ns: String(t.requestEndNs),
      response_start_ns: t.responseStartNs === undefined ? null : String(t.responseStartNs),
      response_end_ns: t.responseEndNs === undefined ? null : String(t.responseEndNs),
      duration_ms: t.responseEndNs === undefined ? null : Number(t.responseEndNs - t.requestStartNs) / 1e6,
    },
  };
  if (ex.incomplete !== undefined) rec.incomplete = ex.incomplete;
  if (ex.notes.length > 0) rec.notes = ex.notes;
  return rec;
}

/** The jsonl record of a connection's fallback to raw. */
export function httpFallbackRecord(f: HttpFallback, ctx: CaptureContext): HttpFallbackRecord {
  return { type: 'http_fallback', ts: isoMicros(ctx.wallClockNs(f.tsNs)), conn: connRecord(f.conn), reason: f.reason, detail: f.detail };
}

/** The jsonl record of the HTTP counters, for the end of a stream. */
export function httpSummaryRecord(stats: HttpStats): HttpSummaryRecord {
  return { type: 'http_summary', ...stats, fallbacks: { ...stats.fallbacks } };
}

/** One line for the end-of-run summary: exchanges, HPACK errors, raw fallbacks by reason. */
export function formatHttpSummary(stats: HttpStats): string {
  const fallbacks = Object.entries(stats.fallbacks)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${n} ${reason}`);
  return (
    `http: ${stats.exchanges} ${stats.exchanges === 1 ? 'exchange' : 'exchanges'} ` +
    `(${stats.http1Exchanges} HTTP/1.x, ${stats.http2Exchanges} HTTP/2, ${stats.incompleteExchanges} incomplete) ` +
    `on ${stats.http1Connections + stats.http2Connections} of ${stats.connections} connections; ` +
    `${stats.headerBlocks} HTTP/2 header blocks, ${stats.hpackErrors} HPACK errors; ` +
    `raw fallbacks: ${fallbacks.length === 0 ? 'none' : fallbacks.join(', ')}`
  );
}
