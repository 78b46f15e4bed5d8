// Crafted HTTP byte streams for the HTTP and HAR tests: calls, HTTP/2 frames with a real HPACK
// encoder, a recording TCP proxy for real Node http/http2 traffic, and a HAR 1.2 checker.

import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import hpack from 'hpack.js';
import type { Compressor, CompressorHeader } from 'hpack.js';
import type { CaptureContext, Direction, TlsCall } from '../../src/events/types.js';
import { HttpTracker } from '../../src/http/tracker.js';
import type { HttpConnection, HttpExchange, HttpFallback } from '../../src/http/types.js';

/** Wall clock = monotonic + this offset (2024-05-01T12:34:56Z at monotonic 0). */
export const OFFSET_NS = 1_714_566_896_000_000_000n;

/** A capture context for the tests. */
export const ctx: CaptureContext = { files: ['/usr/lib/libssl.so.3'], wallClockNs: (ns) => ns + OFFSET_NS };

let clock = 1_000_000_000n;

/** One call of the traced client (`write` = sent to the server) with a fresh, increasing timestamp. */
export function call(dir: Direction, data: Buffer | string, over: Partial<TlsCall> = {}): TlsCall {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  clock += 1_000_000n;
  return {
    tsNs: clock,
    pid: 4242,
    tid: 4242,
    uid: 1000,
    comm: 'curl',
    func: dir === 'write' ? 'SSL_write' : 'SSL_read',
    dir,
    ssl: 0x55d0a1b2c3d0n,
    fileIndex: 0,
    totalLen: bytes.length + (over.truncated ?? 0) + (over.lost ?? 0),
    data: bytes,
    truncated: 0,
    lost: 0,
    ...over,
  };
}

/** Splits bytes into calls of at most `size` bytes. */
export function split(dir: Direction, data: Buffer, size: number, over: Partial<TlsCall> = {}): TlsCall[] {
  const out: TlsCall[] = [];
  for (let i = 0; i < data.length; i += size) out.push(call(dir, data.subarray(i, i + size), over));
  return out;
}

/** Everything a tracker told its listeners. */
export interface Collected {
  exchanges: HttpExchange[];
  fallbacks: HttpFallback[];
  raw: { call: TlsCall; conn: HttpConnection }[];
  ended: boolean;
}

/** Subscribes to a tracker and collects what it emits. */
export function collect(tracker: HttpTracker): Collected {
  const c: Collected = { exchanges: [], fallbacks: [], raw: [], ended: false };
  tracker.subscribe({
    exchange: (e) => c.exchanges.push(e),
    fallback: (f) => c.fallbacks.push(f),
    raw: (callSeen, conn) => c.raw.push({ call: callSeen, conn }),
    end: () => {
      c.ended = true;
    },
  });
  return c;
}

/** Runs `calls` through a fresh tracker, closed at the end; returns it and what it emitted. */
export async function decodeCalls(calls: TlsCall[]): Promise<{ tracker: HttpTracker; got: Collected }> {
  const tracker = new HttpTracker();
  const got = collect(tracker);
  for (const c of calls) tracker.write(c);
  await tracker.close();
  return { tracker, got };
}

/** HTTP/2 frame type codes. */
export const FT = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };

/** One HTTP/2 frame. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A PADDED frame payload: pad length byte, data, padding. */
export function padded(data: Buffer, pad: number): Buffer {
  return Buffer.concat([Buffer.from([pad]), data, Buffer.alloc(pad, 0)]);
}

/** SETTINGS payload from [id, value] pairs. */
export function settings(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, value], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(value, i * 6 + 2);
  });
  return b;
}

/** An HPACK encoder with its own dynamic table (hpack.js compressor), as one side of a connection. */
export class HeaderEncoder {
  readonly comp: Compressor = hpack.compressor.create({ table: { maxSize: 4096 } });

  /** One header block for `headers` ([name, value] pairs or compressor headers). */
  block(headers: ([string, string] | CompressorHeader)[]): Buffer {
    this.comp.write(headers.map((h) => (Array.isArray(h) ? { name: h[0], value: h[1] } : h)));
    const parts: Buffer[] = [];
    for (let chunk = this.comp.read(); chunk !== null; chunk = this.comp.read()) parts.push(chunk);
    return Buffer.concat(parts);
  }
}

/** The client preface. */
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One chunk a proxy saw, in arrival order. */
export interface Recorded {
  dir: Direction;
  data: Buffer;
}

/**
 * A TCP proxy on loopback in front of `target`: every byte between client and server is recorded
 * in the order it arrived, client→server as `write` (the traced process is the client).
 */
export async function recordingProxy(target: AddressInfo): Promise<{ port: number; recorded: Recorded[][]; close(): Promise<void> }> {
  const recorded: Recorded[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const log: Recorded[] = [];
    recorded.push(log);
    const upstream = connect(target.port, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d: Buffer) => {
      log.push({ dir: 'write', data: Buffer.from(d) });
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      log.push({ dir: 'read', data: Buffer.from(d) });
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    recorded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Recorded chunks as calls of one connection (`ssl` tells connections apart). */
export function recordedCalls(log: Recorded[], ssl: bigint, comm = 'node'): TlsCall[] {
  return log.map((r) => call(r.dir, r.data, { ssl, comm }));
}

// ---- HAR 1.2 structural validator ------------------------------------------------------------

type Check = (value: unknown, path: string, errors: string[]) => void;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(optional = false): Check {
  return (v, p, e) => {
    if (v === undefined && optional) return;
    if (typeof v !== 'string') e.push(`${p}: expected a string, got ${JSON.stringify(v)}`);
  };
}
function num(opts: { optional?: boolean; min?: number; int?: boolean } = {}): Check {
  return (v, p, e) => {
    if (v === undefined && opts.optional) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) e.push(`${p}: expected a number, got ${JSON.stringify(v)}`);
    else if (opts.min !== undefined && v < opts.min) e.push(`${p}: ${v} is below ${opts.min}`);
    else if (opts.int && !Number.isInteger(v)) e.push(`${p}: ${v} is not an integer`);
  };
}
function bool(optional = true): Check {
  return (v, p, e) => {
    if (v === undefined && optional) return;
    if (typeof v !== 'boolean') e.push(`${p}: expected a boolean`);
  };
}
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
function date(optional = false): Check {
  return (v, p, e) => {
    if (v === undefined && optional) return;
    if (typeof v !== 'string' || !ISO_DATE.test(v) || Number.isNaN(Date.parse(v))) e.push(`${p}: not an ISO 8601 date: ${JSON.stringify(v)}`);
  };
}
function obj(fields: Record<string, Check>, optional = false): Check {
  return (v, p, e) => {
    if (v === undefined && optional) return;
    if (!isObject(v)) {
      e.push(`${p}: expected an object`);
      return;
    }
    for (const [k, check] of Object.entries(fields)) check(v[k], `${p}.${k}`, e);
    // Custom fields must start with an underscore (HAR 1.2 "Custom fields").
    for (const k of Object.keys(v)) if (!(k in fields) && !k.startsWith('_')) e.push(`${p}.${k}: not a HAR 1.2 field`);
  };
}
function arr(item: Check, optional = false): Check {
  return (v, p, e) => {
    if (v === undefined && optional) return;
    if (!Array.isArray(v)) {
      e.push(`${p}: expected an array`);
      return;
    }
    v.forEach((x, i) => item(x, `${p}[${i}]`, e));
  };
}

const nameValue = obj({ name: str(), value: str(), comment: str(true) });
const cookie = obj({
  name: str(),
  value: str(),
  path: str(true),
  domain: str(true),
  expires: date(true),
  httpOnly: bool(),
  secure: bool(),
  comment: str(true),
});
const timing = (optional: boolean): Check => (v, p, e) => {
  if (v === undefined && optional) return;
  num()(v, p, e);
  if (typeof v === 'number' && v < 0 && v !== -1) e.push(`${p}: negative timing other than -1`);
};
const entry = obj({
  pageref: str(true),
  startedDateTime: date(),
  time: num({ min: 0 }),
  request: obj({
    method: str(),
    url: str(),
    httpVersion: str(),
    cookies: arr(cookie),
    headers: arr(nameValue),
    queryString: arr(nameValue),
    postData: obj(
      {
        mimeType: str(),
        params: arr(obj({ name: str(), value: str(true), fileName: str(true), contentType: str(true), comment: str(true) })),
        text: str(),
        comment: str(true),
      },
      true,
    ),
    headersSize: num({ int: true }),
    bodySize: num({ int: true }),
    comment: str(true),
  }),
  response: obj({
    status: num({ int: true, min: 0 }),
    statusText: str(),
    httpVersion: str(),
    cookies: arr(cookie),
    headers: arr(nameValue),
    content: obj({
      size: num({ int: true }),
      compression: num({ optional: true, int: true }),
      mimeType: str(),
      text: str(true),
      encoding: str(true),
      comment: str(true),
    }),
    redirectURL: str(),
    headersSize: num({ int: true }),
    bodySize: num({ int: true }),
    comment: str(true),
  }),
  cache: obj({ beforeRequest: obj({}, true), afterRequest: obj({}, true), comment: str(true) }),
  timings: obj({
    blocked: timing(true),
    dns: timing(true),
    connect: timing(true),
    send: num({ min: 0 }),
    wait: num({ min: 0 }),
    receive: num({ min: 0 }),
    ssl: timing(true),
    comment: str(true),
  }),
  serverIPAddress: str(true),
  connection: str(true),
  comment: str(true),
});
const creator = obj({ name: str(), version: str(), comment: str(true) });
const har = obj({
  log: obj({
    version: (v, p, e) => {
      if (v !== '1.2') e.push(`${p}: expected "1.2"`);
    },
    creator,
    browser: obj({ name: str(), version: str(), comment: str(true) }, true),
    pages: arr(obj({ startedDateTime: date(), id: str(), title: str(), pageTimings: obj({ onContentLoad: num({ optional: true }), onLoad: num({ optional: true }), comment: str(true) }), comment: str(true) }), true),
    entries: arr(entry),
    comment: str(true),
  }),
});

/**
 * Checks a parsed HAR document against HAR 1.2: every required field present with its type, no
 * unknown fields (custom ones start with `_`), dates in ISO 8601, timings >= 0 (or -1 where allowed),
 * and each entry's time equal to the sum of its timings. Returns the problems found.
 */
export function validateHar(doc: unknown): string[] {
  const errors: string[] = [];
  har(doc, '$', errors);
  if (errors.length === 0) {
    const entries = (doc as { log: { entries: { time: number; timings: Record<string, number> }[] } }).log.entries;
    entries.forEach((en, i) => {
      const sum = Object.entries(en.timings)
        .filter(([k, v]) => k !== 'comment' && k !== 'ssl' && v !== -1)
        .reduce((a, [, v]) => a + v, 0);
      if (Math.abs(sum - en.time) > 0.01) errors.push(`$.log.entries[${i}].time ${en.time} is not the sum of its timings ${sum}`);
    });
  }
  return errors;
}
