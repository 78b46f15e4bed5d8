// Telling HTTP from other bytes by how a direction starts: an HTTP/1.x request or status line,
// the HTTP/2 client preface, or an HTTP/2 SETTINGS frame (a server's first words).

import type { Direction } from '../events/types.js';
import { H2_PREFACE } from './h2.js';
import type { HttpConnection, HttpRole } from './types.js';

/** What follows a request target: the protocol version and the line end. */
const HTTP11_VERSION_CRLF = Buffer.from('HTTP/1.1\r\n', 'latin1');

/** What the first bytes of a direction look like. */
export const enum StartKind {
  /** Not enough bytes to tell yet. */
  Incomplete,
  /** An HTTP/1.x request line: this direction is the client's. */
  Http1Request,
  /** The HTTP/2 client preface: this direction is the client's. */
  Http2Preface,
  /** An HTTP/1.x status line before any request: the capture began mid-connection. */
  Http1Response,
  /** A SETTINGS frame on stream 0: an HTTP/2 server speaking first (the client's preface is due). */
  Http2Settings,
  /** Some other HTTP/2 frame: probably an HTTP/2 connection caught midway. */
  Http2Frame,
  /** Anything else. */
  Other,
}

/** Longest request line or status line prefix tlstap waits for before calling the bytes not HTTP. */
export const MAX_START_LINE = 16 * 1024;

const HTTP1 = Buffer.from('HTTP/1.', 'latin1');

/** RFC 9110 tchar: the characters of a method token. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/** Whether data[0, n) equals prefix[0, n) for n = min of both lengths. */
function matchesPrefix(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.compare(prefix, 0, n, 0, n) === 0;
}

/** Classifies the first bytes of a direction. */
export function classifyStart(data: Buffer): StartKind {
  const n = data.length;
  if (n === 0) return StartKind.Incomplete;
  if (matchesPrefix(data, H2_PREFACE)) return n >= H2_PREFACE.length ? StartKind.Http2Preface : StartKind.Incomplete;
  if (matchesPrefix(data, HTTP1)) {
    if (n < 12) return StartKind.Incomplete;
    return /^HTTP\/1\.[01] \d{3}[ \r\n]/.test(data.toString('latin1', 0, 13)) || /^HTTP\/1\.[01] \d{3}$/.test(data.toString('latin1', 0, 12))
      ? StartKind.Http1Response
      : StartKind.Other;
  }
  const line = requestLine(data);
  if (line !== StartKind.Other) return line;
  return frameStart(data);
}

/** METHOD SP target SP HTTP/1.x CRLF, judged as far as the bytes go. */
function requestLine(data: Buffer): StartKind {
  const n = data.length;
  let i = 0;
  while (i < n && i <= 32 && TCHAR[data[i]!] === 1) i++;
  if (i === n) return i <= 32 ? StartKind.Incomplete : StartKind.Other;
  if (i === 0 || data[i] !== 0x20) return StartKind.Other;
  i++;
  const targetStart = i;
  // The target: visible ASCII (and obs-text) up to the next space.
  while (i < n && data[i]! > 0x20 && data[i] !== 0x7f) i++;
  if (i === n) return n < MAX_START_LINE ? StartKind.Incomplete : StartKind.Other;
  if (i === targetStart || data[i] !== 0x20) return StartKind.Other;
  i++;
  const rest = data.subarray(i, i + 10);
  const expect = HTTP11_VERSION_CRLF;
  for (let k = 0; k < rest.length; k++) {
    const b = rest[k]!;
    if (k === 7) {
      if (b !== 0x30 && b !== 0x31) return StartKind.Other;
    } else if (k === 8) {
      // A bare LF ends the line too.
      if (b === 0x0a) return StartKind.Http1Request;
      if (b !== 0x0d) return StartKind.Other;
    } else if (b !== expect[k]) return StartKind.Other;
  }
  return rest.length === 10 ? StartKind.Http1Request : StartKind.Incomplete;
}

/** An HTTP/2 frame header at the start: SETTINGS on stream 0, or some other plausible frame. */
function frameStart(data: Buffer): StartKind {
  if (data.length < 9) return data.length >= 4 && data[3]! > 0x9 ? StartKind.Other : StartKind.Incomplete;
  const length = (data[0]! << 16) | (data[1]! << 8) | data[2]!;
  const type = data[3]!;
  const stream = data.readUInt32BE(5);
  if (type === 0x4 && stream === 0 && length % 6 === 0 && (data[4]! & ~0x1) === 0) return StartKind.Http2Settings;
  if (type <= 0x9 && length <= 16384 && stream >> 31 === 0) return StartKind.Http2Frame;
  return StartKind.Other;
}

/** Where Linux picks ephemeral (client) ports by default (net.ipv4.ip_local_port_range). */
const EPHEMERAL_FROM = 32768;

/**
 * The traced process's role on a connection that is not HTTP: by the ports when exactly one end
 * has an ephemeral one (that end is the client), else by who spoke first (in TLS protocols the
 * client mostly does: postgres, redis, HTTP).
 */
export function guessRole(conn: HttpConnection, firstDir: Direction): HttpRole {
  if (conn.local !== undefined && conn.remote !== undefined) {
    const localEphemeral = conn.local.port >= EPHEMERAL_FROM;
    const remoteEphemeral = conn.remote.port >= EPHEMERAL_FROM;
    if (localEphemeral !== remoteEphemeral) return localEphemeral ? 'client' : 'server';
  }
  return firstDir === 'write' ? 'client' : 'server';
}
