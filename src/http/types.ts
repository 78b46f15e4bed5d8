// The HTTP model rebuilt from captured plaintext: exchanges (request + response), the connection
// they ran on, why a connection was left as raw bytes, and the counters for the summary.

import type { Endpoint, TlsCall } from '../events/types.js';

/** The HTTP versions tlstap decodes. */
export type HttpVersion = 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2';

/** One header field as it was sent (names keep their case in HTTP/1.x, lower case in HTTP/2). */
export interface HttpHeader {
  name: string;
  value: string;
  /** HTTP/2: sent as a never-indexed literal, which is how a sender marks a header sensitive. */
  sensitive?: boolean;
  /** HTTP/1.x: the name or value was not valid UTF-8, so it is shown as latin-1 (one character per byte). */
  latin1?: boolean;
}

/** A message body: the bytes after transfer decoding (chunked, DATA frames), before content decoding. */
export interface HttpBody {
  /** The captured body bytes, up to the tracker's maxBodyBytes. */
  bytes: Buffer;
  /** Body bytes seen on the wire (after chunked decoding), kept or not. */
  size: number;
  /** Whether the body ended as the protocol says it should (false: cut by a drop, a reset, the end). */
  complete: boolean;
  /** Bytes of the body that went by uncaptured (--max-bytes, lost records); the body is incomplete. */
  missing?: number;
}

/** The request half of an exchange. */
export interface HttpRequest {
  method: string;
  /** scheme://authority/path, from :scheme/:authority/:path or the Host header. */
  url: string;
  /** The request target as sent (`/path?q` or absolute form). */
  target: string;
  httpVersion: HttpVersion;
  headers: HttpHeader[];
  /** Chunked or HTTP/2 trailers, if any. */
  trailers: HttpHeader[];
  body: HttpBody;
}

/** An interim (1xx) response, e.g. `100 Continue`. */
export interface HttpInterim {
  status: number;
  headers: HttpHeader[];
  tsNs: bigint;
}

/** The response half of an exchange. */
export interface HttpResponse {
  status: number;
  /** The reason phrase (HTTP/1.x); empty in HTTP/2. */
  statusText: string;
  httpVersion: HttpVersion;
  headers: HttpHeader[];
  trailers: HttpHeader[];
  /** 1xx responses that came before this one. */
  interim: HttpInterim[];
  body: HttpBody;
}

/** CLOCK_MONOTONIC nanoseconds of the calls that carried each end of the exchange. */
export interface HttpTimings {
  requestStartNs: bigint;
  requestEndNs: bigint;
  /** Undefined when no response was captured. */
  responseStartNs?: bigint;
  responseEndNs?: bigint;
}

/** Which side of the connection the traced process is. */
export type HttpRole = 'client' | 'server';

/** The connection an exchange ran on, as far as the capture knows it. */
export interface HttpConnection {
  /** ConnectionInfo.id when the connection tracker gave one. */
  id?: number;
  pid: number;
  /** The traced process's name at the connection's first call. */
  comm: string;
  ssl: bigint;
  /** Whether the traced process sent the requests (client) or received them (server). */
  role: HttpRole;
  local?: Endpoint;
  remote?: Endpoint;
}

/** One request and its response (when captured), paired in order (HTTP/1.x) or by stream (HTTP/2). */
export interface HttpExchange {
  /** Order of completion within the run, from 1. */
  seq: number;
  httpVersion: HttpVersion;
  conn: HttpConnection;
  /** HTTP/2 stream id. */
  streamId?: number;
  /** HTTP/2 server push: the request is the PUSH_PROMISE's. */
  pushed?: boolean;
  request: HttpRequest;
  response?: HttpResponse;
  timings: HttpTimings;
  /** Set when the exchange is not whole, saying why (no response, stream reset, bytes lost ...). */
  incomplete?: string;
  /** Remarks that do not make the exchange incomplete (upgraded to WebSocket ...). */
  notes: string[];
}

/** Why a connection's bytes are shown raw instead of as HTTP. */
export const FALLBACK_REASONS = {
  'not-http': 'the first bytes are neither an HTTP/1.x request line nor the HTTP/2 preface',
  'mid-connection': 'the capture started in the middle of the connection',
  malformed: 'the bytes broke the HTTP framing',
  hpack: 'an HTTP/2 header block could not be decoded (HPACK)',
  gap: 'bytes of the stream were not captured (truncated or lost)',
  upgrade: 'the connection switched protocols (WebSocket, CONNECT tunnel)',
} as const;

/** A key of FALLBACK_REASONS. */
export type FallbackReason = keyof typeof FALLBACK_REASONS;

/** A connection that is no longer (or never was) decoded as HTTP. */
export interface HttpFallback {
  conn: HttpConnection;
  reason: FallbackReason;
  /** What happened, for the note shown to the user. */
  detail: string;
  /** tsNs of the call where decoding stopped. */
  tsNs: bigint;
}

/** Counts for the end-of-run summary and the machine-readable outputs. */
export interface HttpStats {
  /** Connections seen (any protocol). */
  connections: number;
  /** Connections decoded as HTTP/1.x or HTTP/2 (at least at first). */
  http1Connections: number;
  http2Connections: number;
  /** Exchanges emitted, and how many of them are incomplete. */
  exchanges: number;
  http1Exchanges: number;
  http2Exchanges: number;
  incompleteExchanges: number;
  /** Connections shown raw, by reason. */
  fallbacks: Record<FallbackReason, number>;
  /** HTTP/2 header blocks decoded, and those that failed to decode. */
  headerBlocks: number;
  hpackErrors: number;
}

/** Where the tracker delivers what it rebuilt; every method must return without throwing. */
export interface HttpListener {
  /** A finished (or given-up) exchange. */
  exchange?(exchange: HttpExchange): void;
  /** A connection falls back to raw from this point on. */
  fallback?(fallback: HttpFallback): void;
  /** A call on a connection that is not decoded as HTTP (its bytes, for raw display). */
  raw?(call: TlsCall, conn: HttpConnection): void;
  /** The tracker has flushed everything at the end of the capture. */
  end?(stats: HttpStats): void;
  /** An output of the listener's own: the tracker closes it after end(), and waits for it. */
  close?(): Promise<void>;
  /** True while the listener's output is behind; the tracker's own needsDrain reports it. */
  readonly needsDrain?: boolean;
  /** Resolves when the listener's output can take more. */
  drained?(): Promise<void>;
}
