// HTTP/1.x and HTTP/2 rebuilt from captured plaintext: the tracker, the model, redaction, records.

export { HttpTracker, emptyHttpStats } from './tracker.js';
export type { HttpTrackerOptions } from './tracker.js';
export { FALLBACK_REASONS } from './types.js';
export type {
  FallbackReason,
  HttpBody,
  HttpConnection,
  HttpExchange,
  HttpFallback,
  HttpHeader,
  HttpInterim,
  HttpListener,
  HttpRequest,
  HttpResponse,
  HttpRole,
  HttpStats,
  HttpTimings,
  HttpVersion,
} from './types.js';
export { decodeBody, looksLikeText } from './body.js';
export type { DecodedBody } from './body.js';
export { isSensitiveHeader, redactHeaders, redactHeaderValue, REDACTED } from './redact.js';
export { formatHttpSummary, httpFallbackRecord, httpRecord, httpSummaryRecord } from './record.js';
export type { HttpBodyRecord, HttpFallbackRecord, HttpRecord, HttpSummaryRecord } from './record.js';
export { H2_PREFACE, h2ErrorName } from './h2.js';
