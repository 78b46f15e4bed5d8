// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/) from decoded exchanges: entries with
// timings from the capture timestamps, streamed to a 0600 file as exchanges complete; the
// document is closed when the capture ends.

import type { Writable } from 'node:stream';
import type { CaptureContext } from '../events/types.js';
import { PLAIN_BODY_STRINGS, decodeBody } from '../http/body.js';
import type { BodyStrings } from '../http/body.js';
import { headerValue } from '../http/message.js';
import { redactHeaders } from '../http/redact.js';
import type { HttpTracker } from '../http/tracker.js';
import type { HttpBody, HttpExchange, HttpHeader, HttpListener, HttpStats, HttpVersion } from '../http/types.js';
import { multipartBoundary, parseMultipart } from './multipart.js';
import type { FormPart } from './multipart.js';
import { BatchWriter } from '../output/batch.js';
import { BodyJsonWriter } from '../output/body-json.js';
import { createPrivateWriteStream } from '../util/private-file.js';
import { tlstapVersion } from '../version.js';

/** A HAR name/value pair (headers, query string, form parameters). */
export interface HarNameValue {
  name: string;
  value: string;
}

/** A HAR postData parameter: a form field, or a file of a multipart upload. */
export interface HarParam {
  name: string;
  value?: string;
  fileName?: string;
  contentType?: string;
  comment?: string;
}

/** A HAR request body. `_encoding: "base64"` (a custom field, like content.encoding) marks a binary body's text. */
export interface HarPostData {
  mimeType: string;
  params: HarParam[];
  text: string;
  _encoding?: 'base64';
  comment?: string;
}

/** A HAR cookie. */
export interface HarCookie {
  name: string;
  value: string;
  path?: string;
  domain?: string;
  expires?: string;
  httpOnly?: boolean;
  secure?: boolean;
}

/** A HAR request. */
export interface HarRequest {
  method: string;
  url: string;
  httpVersion: string;
  cookies: HarCookie[];
  headers: HarNameValue[];
  queryString: HarNameValue[];
  postData?: HarPostData;
  headersSize: number;
  bodySize: number;
  comment?: string;
}

/** A HAR response. */
export interface HarResponse {
  status: number;
  statusText: string;
  httpVersion: string;
  cookies: HarCookie[];
  headers: HarNameValue[];
  content: { size: number; compression?: number; mimeType: string; text?: string; encoding?: string; comment?: string };
  redirectURL: string;
  headersSize: number;
  bodySize: number;
  comment?: string;
}

/** A HAR entry. */
export interface HarEntry {
  startedDateTime: string;
  time: number;
  request: HarRequest;
  response: HarResponse;
  cache: Record<string, never>;
  timings: { blocked: number; dns: number; connect: number; send: number; wait: number; receive: number; ssl: number };
  serverIPAddress?: string;
  connection?: string;
  comment?: string;
}

/** A whole HAR document. */
export interface HarLog {
  log: {
    version: '1.2';
    creator: { name: string; version: string };
    entries: HarEntry[];
    comment?: string;
  };
}

/** Options for HAR entries and files. */
export interface HarOptions {
  /** Mask credential headers and cookies (--redact). */
  redact: boolean;
}

function harVersion(v: HttpVersion): string {
  return v === 'HTTP/2' ? 'HTTP/2.0' : v;
}

function nameValues(headers: HttpHeader[]): HarNameValue[] {
  return headers.map((h) => ({ name: h.name, value: h.value }));
}

/** Milliseconds between two monotonic timestamps, never negative, to the microsecond. */
function msBetween(from: bigint, to: bigint): number {
  return to > from ? Number((to - from) / 1000n) / 1000 : 0;
}

/** Request line or status line plus header lines plus the blank line, in bytes (HTTP/1.x only). */
function headersSize(firstLine: string, headers: HttpHeader[], version: HttpVersion): number {
  if (version === 'HTTP/2') return -1;
  let n = Buffer.byteLength(firstLine) + 2 + 2;
  for (const h of headers) n += Buffer.byteLength(h.name) + 2 + Buffer.byteLength(h.value) + 2;
  return n;
}

function requestCookies(headers: HttpHeader[]): HarCookie[] {
  const out: HarCookie[] = [];
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'cookie') continue;
    for (const pair of h.value.split(';')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      out.push({ name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim() });
    }
  }
  return out;
}

function responseCookies(headers: HttpHeader[]): HarCookie[] {
  const out: HarCookie[] = [];
  for (const h of headers) {
    if (h.name.toLowerCase() !== 'set-cookie') continue;
    const [first, ...attrs] = h.value.split(';');
    const eq = first!.indexOf('=');
    if (eq <= 0) continue;
    const cookie: HarCookie = { name: first!.slice(0, eq).trim(), value: first!.slice(eq + 1).trim() };
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const value = i < 0 ? '' : attr.slice(i + 1).trim();
      if (key === 'path') cookie.path = value;
      else if (key === 'domain') cookie.domain = value;
      else if (key === 'expires') {
        const d = new Date(value);
        if (!Number.isNaN(d.getTime())) cookie.expires = d.toISOString();
      } else if (key === 'httponly') cookie.httpOnly = true;
      else if (key === 'secure') cookie.secure = true;
    }
    out.push(cookie);
  }
  return out;
}

function queryString(url: string): HarNameValue[] {
  try {
    return [...new URL(url).searchParams].map(([name, value]) => ({ name, value }));
  } catch {
    return [];
  }
}

/**
 * A request body as HAR postData: text as it is; a urlencoded form also as params; a whole
 * multipart/form-data body also as params (file parts with fileName and contentType, a binary
 * part's value as base64); binary bytes as base64 with `_encoding: "base64"` (see docs/http.md).
 */
function postData(body: HttpBody, headers: HttpHeader[], strings: BodyStrings): HarPostData {
  const mimeType = headerValue(headers, 'content-type') ?? '';
  const decoded = decodeBody(body, headers);
  const data: HarPostData = { mimeType, params: [], text: '' };
  if (decoded.text && /^application\/x-www-form-urlencoded/i.test(mimeType)) {
    data.text = decoded.bytes.toString('utf8');
    data.params = [...new URLSearchParams(data.text)].map(([name, value]) => ({ name, value }));
  } else if (decoded.text) {
    data.text = strings.text(decoded.bytes);
  } else {
    data.text = strings.base64(decoded.bytes);
    data._encoding = 'base64';
  }
  const boundary = body.complete ? multipartBoundary(mimeType) : undefined;
  const parts = boundary === undefined ? undefined : parseMultipart(decoded.bytes, boundary);
  if (parts !== undefined) data.params = parts.map((part) => formParam(part, strings));
  const notes = [
    decoded.text ? '' : 'binary body: text is base64 (_encoding)',
    body.complete ? '' : body.missing ? `incomplete: ${body.missing} bytes not captured` : 'incomplete',
    decoded.note ?? '',
  ].filter((s) => s !== '');
  if (notes.length > 0) data.comment = notes.join('; ');
  return data;
}

function formParam(part: FormPart, strings: BodyStrings): HarParam {
  const param: HarParam = { name: part.name };
  if (part.text) param.value = strings.text(part.data);
  else {
    // Replay tools need a value (har-to-k6 fails without one); base64 keeps the bytes.
    param.value = strings.base64(part.data);
    param.comment = `binary, ${part.data.length} bytes: value is base64`;
  }
  if (part.fileName !== undefined) param.fileName = part.fileName;
  if (part.contentType !== undefined) param.contentType = part.contentType;
  return param;
}

/**
 * The HAR entry for one exchange. The bodies' strings come from `strings` (stand-ins when a writer
 * encodes the bytes itself).
 */
export function harEntry(ex: HttpExchange, ctx: CaptureContext, opts: HarOptions, strings: BodyStrings = PLAIN_BODY_STRINGS): HarEntry {
  const t = ex.timings;
  const req = ex.request;
  const res = ex.response;
  const reqHeaders = redactHeaders(req.headers, opts.redact);
  const request: HarRequest = {
    method: req.method,
    url: req.url,
    httpVersion: harVersion(req.httpVersion),
    cookies: requestCookies(reqHeaders),
    headers: nameValues(reqHeaders),
    queryString: queryString(req.url),
    headersSize: headersSize(`${req.method} ${req.target} ${req.httpVersion}`, req.headers, req.httpVersion),
    bodySize: req.body.size,
  };
  if (req.body.size > 0) request.postData = postData(req.body, req.headers, strings);
  let response: HarResponse;
  if (res === undefined) {
    response = {
      status: 0,
      statusText: '',
      httpVersion: '',
      cookies: [],
      headers: [],
      content: { size: 0, mimeType: 'x-unknown' },
      redirectURL: '',
      headersSize: -1,
      bodySize: -1,
      comment: ex.incomplete ?? 'no response captured',
    };
  } else {
    const resHeaders = redactHeaders(res.headers, opts.redact);
    const decoded = decodeBody(res.body, res.headers);
    const content: HarResponse['content'] = {
      size: decoded.encoding !== undefined ? decoded.bytes.length : res.body.size,
      mimeType: headerValue(res.headers, 'content-type') ?? 'x-unknown',
    };
    if (decoded.encoding !== undefined) content.compression = content.size - res.body.size;
    if (decoded.bytes.length > 0) {
      if (decoded.text) content.text = strings.text(decoded.bytes);
      else {
        content.text = strings.base64(decoded.bytes);
        content.encoding = 'base64';
      }
    }
    const notes = [res.body.complete ? '' : res.body.missing ? `incomplete body: ${res.body.missing} bytes not captured` : 'incomplete body', decoded.note ?? ''].filter((s) => s !== '');
    if (notes.length > 0) content.comment = notes.join('; ');
    response = {
      status: res.status,
      statusText: res.statusText,
      httpVersion: harVersion(res.httpVersion),
      cookies: responseCookies(resHeaders),
      headers: nameValues(resHeaders),
      content,
      redirectURL: headerValue(res.headers, 'location') ?? '',
      headersSize: headersSize(`${res.httpVersion} ${res.status} ${res.statusText}`, res.headers, res.httpVersion),
      bodySize: res.body.size,
    };
  }
  const send = msBetween(t.requestStartNs, t.requestEndNs);
  const wait = t.responseStartNs === undefined ? 0 : msBetween(t.requestEndNs, t.responseStartNs);
  const receive = t.responseStartNs === undefined || t.responseEndNs === undefined ? 0 : msBetween(t.responseStartNs, t.responseEndNs);
  const entry: HarEntry = {
    startedDateTime: new Date(Number(ctx.wallClockNs(t.requestStartNs) / 1_000_000n)).toISOString(),
    time: Math.round((send + wait + receive) * 1000) / 1000,
    request,
    response,
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, send, wait, receive, ssl: -1 },
  };
  const server = ex.conn.role === 'client' ? ex.conn.remote : ex.conn.local;
  if (server !== undefined) entry.serverIPAddress = server.ip;
  const client = ex.conn.role === 'client' ? ex.conn.local : ex.conn.remote;
  if (ex.conn.id !== undefined) entry.connection = String(ex.conn.id);
  else if (client !== undefined) entry.connection = String(client.port);
  const comments = [`${ex.conn.comm} pid ${ex.conn.pid}`];
  if (ex.streamId !== undefined) comments.push(`stream ${ex.streamId}${ex.pushed ? ' (server push)' : ''}`);
  if (ex.incomplete !== undefined) comments.push(`incomplete: ${ex.incomplete}`);
  comments.push(...ex.notes);
  entry.comment = comments.join('; ');
  return entry;
}

/** A HAR document holding `entries`, in the order given. */
export function harLog(entries: HarEntry[], comment?: string): HarLog {
  const log: HarLog['log'] = { version: '1.2', creator: { name: 'tlstap', version: tlstapVersion() }, entries };
  if (comment !== undefined) log.comment = comment;
  return { log };
}

/** Options of createHarSink. */
export interface HarSinkOptions extends HarOptions {
  /** The tracker whose exchanges become entries (fed by the pipeline, shared with other outputs). */
  tracker: HttpTracker;
  /** Batched bytes that trigger a write (default 256 KiB). */
  flushBytes?: number;
  /** Called once, at once, when writing fails (ENOSPC, EIO ...). */
  onClosed?: (error: NodeJS.ErrnoException) => void;
}

/**
 * The `--har` output: a listener of a tracker, which feeds it and closes it. Each exchange is
 * written as an entry when it completes, so nothing is kept but the stream's batch.
 */
export interface HarSink extends HttpListener {
  /** Ends the document and the stream; resolves when it is on disk (rejects when writing failed). */
  close(): Promise<void>;
  readonly path: string;
  readonly tracker: HttpTracker;
  readonly stats: HttpStats;
  /** Entries written so far. */
  readonly entries: number;
  readonly needsDrain: boolean;
  drained(): Promise<void>;
}

/** Where the entries go in `{"log":{...,"entries":[` + entries + `],"comment":...}}`. */
const ENTRIES_KEY = '"entries":[';

class HarWriter implements HarSink {
  entries = 0;
  private readonly writer: BatchWriter;
  /** Writes entries with their bodies encoded straight into the batch. */
  private readonly bodies = new BodyJsonWriter();
  /** Where the head (up to the entries array) ends in a serialised harLog. */
  private readonly cut: number;
  private failure: NodeJS.ErrnoException | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly stream: Writable,
    private readonly ctx: CaptureContext,
    private readonly opts: HarSinkOptions,
  ) {
    const onClosed = (e: NodeJS.ErrnoException) => {
      this.failure ??= e;
      opts.onClosed?.(e);
    };
    this.writer = new BatchWriter(stream, { onClosed, flushBytes: opts.flushBytes });
    const head = JSON.stringify(harLog([]));
    this.cut = head.indexOf(ENTRIES_KEY) + ENTRIES_KEY.length;
    this.writer.writeString(head.slice(0, this.cut));
    this.writer.commit();
    opts.tracker.subscribe(this);
  }

  get tracker(): HttpTracker {
    return this.opts.tracker;
  }

  get stats(): HttpStats {
    return this.opts.tracker.stats;
  }

  get needsDrain(): boolean {
    return this.writer.needsDrain;
  }

  drained(): Promise<void> {
    return this.writer.drained();
  }

  /** One entry per line, in completion order. */
  exchange(ex: HttpExchange): void {
    if (this.writer.error !== undefined || this.closing !== undefined) return;
    this.bodies.write(harEntry(ex, this.ctx, this.opts, this.bodies.strings), this.writer, this.entries === 0 ? '\n' : ',\n');
    this.entries++;
    this.writer.commit();
  }

  close(): Promise<void> {
    this.closing ??= this.writeTail();
    return this.closing;
  }

  private async writeTail(): Promise<void> {
    const s = this.stats;
    const tail = JSON.stringify(harLog([], `captured by tlstap: ${s.exchanges} exchanges, ${s.incompleteExchanges} incomplete`));
    this.writer.writeString(`${this.entries > 0 ? '\n' : ''}${tail.slice(this.cut)}\n`);
    this.writer.commit();
    await this.writer.close();
    await new Promise<void>((resolve) => {
      this.stream.end(() => resolve());
    });
    if (this.failure !== undefined) throw this.failure;
  }
}

/**
 * `--har` to `path`, listening to `opts.tracker`: the file is created at once with mode 0600 and
 * without following a symlink (so a bad path fails before the capture starts), the document's head
 * is written then, each entry as its exchange completes, the tail when the tracker closes.
 */
export function createHarSink(path: string, ctx: CaptureContext, opts: HarSinkOptions): HarSink {
  return new HarWriter(path, createPrivateWriteStream(path), ctx, opts);
}

/** `--har` to a stream of the caller's (named `name` in reports); close() ends it. */
export function createHarStreamSink(stream: Writable, name: string, ctx: CaptureContext, opts: HarSinkOptions): HarSink {
  return new HarWriter(name, stream, ctx, opts);
}
