// A local HTTPS server with a few predictable routes, for `tlstap demo` and end-to-end tests.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { endianness } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createSelfSignedCert } from './cert.js';

/** One request the demo server has seen, recorded once its body has arrived. */
export interface DemoRequest {
  method: string;
  /** The request target as sent, query string included. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The client's TCP port: tells connections apart (keep-alive reuses it). */
  remotePort: number;
}

/** A custom route: answers one request; a thrown error becomes a 500. */
export type DemoRouteHandler = (req: DemoRequest, res: ServerResponse) => void | Promise<void>;

/** Options for startDemoServer. */
export interface DemoServerOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Extra routes keyed "METHOD /pathname" (e.g. "GET /slow"); they win over the built-in ones. */
  routes?: Record<string, DemoRouteHandler>;
}

/** A running demo server. */
export interface DemoServer {
  /** Base URL without a trailing slash, e.g. https://127.0.0.1:43117. */
  url: string;
  port: number;
  host: string;
  /** The self-signed certificate (PEM), valid until close(). */
  certPath: string;
  /** Every request served so far, in arrival order. */
  requests: DemoRequest[];
  /** Stops listening, drops open connections and deletes the certificate; safe to call twice. */
  close(): Promise<void>;
}

/** Body of GET /hello. */
export const HELLO_BODY = 'hello from tlstap demo\n';

/** Body of GET /json. */
export const JSON_BODY = JSON.stringify({
  service: 'tlstap demo',
  ok: true,
  items: [1, 2, 3],
  note: 'this JSON travelled inside TLS',
});

/** The built-in routes, for help text. */
export const DEFAULT_ROUTES: readonly string[] = [
  'GET /hello      small text body',
  'GET /json       small JSON body',
  'GET /bytes/N    N deterministic pseudo-random bytes',
  'POST /echo      echoes the request body',
];

/** Largest N that GET /bytes/N accepts (64 GiB). */
export const MAX_BYTES_ROUTE = 2 ** 36;

const CHUNK_SIZE = 64 * 1024;
const BIG_ENDIAN = endianness() === 'BE';

/** Seeds xorshift32 from n, so every length has its own stream. */
function seedFor(n: number): number {
  const lo = n >>> 0;
  const hi = Math.floor(n / 2 ** 32) >>> 0;
  let h = (lo ^ Math.imul(hi, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) >>> 0;
  return h === 0 ? 0x6d2b79f5 : h;
}

function checkLength(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`byte count must be a non-negative safe integer, got ${n}`);
  }
}

/** Yields the n bytes of GET /bytes/n in fresh buffers of at most chunkSize (a multiple of 4). */
export function* bytesChunks(n: number, chunkSize = CHUNK_SIZE): Generator<Buffer> {
  checkLength(n);
  if (!Number.isInteger(chunkSize) || chunkSize <= 0 || chunkSize % 4 !== 0) {
    throw new RangeError(`chunkSize must be a positive multiple of 4, got ${chunkSize}`);
  }
  // The stream: little-endian xorshift32 words, cut to n bytes.
  let x = seedFor(n);
  let left = n;
  while (left > 0) {
    const take = Math.min(left, chunkSize);
    const words = new Uint32Array(Math.ceil(take / 4));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    const buf = Buffer.from(words.buffer, 0, take);
    // Typed arrays use the host's byte order; the stream is defined as little-endian.
    if (BIG_ENDIAN) Buffer.from(words.buffer).swap32();
    yield buf;
    left -= take;
  }
}

/** The exact n bytes GET /bytes/n serves. */
export function expectedBytes(n: number): Buffer {
  checkLength(n);
  return Buffer.concat([...bytesChunks(n)], n);
}

/** Hex SHA-256 of the n bytes GET /bytes/n serves, computed without holding them all. */
export function sha256OfBytes(n: number): string {
  const hash = createHash('sha256');
  for (const chunk of bytesChunks(n)) hash.update(chunk);
  return hash.digest('hex');
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

const TEXT = 'text/plain; charset=utf-8';

function sendText(res: ServerResponse, status: number, body: string, type = TEXT): void {
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': bytes.length });
  res.end(bytes);
}

async function serveBytes(res: ServerResponse, text: string): Promise<void> {
  const n = Number(text);
  if (!/^\d{1,15}$/.test(text) || n > MAX_BYTES_ROUTE) {
    sendText(res, 400, `bad byte count ${JSON.stringify(text)}: use 0..${MAX_BYTES_ROUTE}\n`);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n });
  // pipeline waits for 'drain' between chunks and stops generating if the client goes away.
  await pipeline(Readable.from(bytesChunks(n), { objectMode: false }), res);
}

async function serveBuiltin(
  req: DemoRequest,
  res: ServerResponse,
  pathname: string,
): Promise<void> {
  const known = pathname === '/hello' || pathname === '/json' || pathname === '/echo';
  const bytes = /^\/bytes\/(.*)$/.exec(pathname);
  if (req.method === 'GET' && pathname === '/hello') return sendText(res, 200, HELLO_BODY);
  if (req.method === 'GET' && pathname === '/json') {
    return sendText(res, 200, JSON_BODY, 'application/json');
  }
  if (req.method === 'GET' && bytes) return serveBytes(res, bytes[1] ?? '');
  if (req.method === 'POST' && pathname === '/echo') {
    const type = req.headers['content-type'] ?? 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': req.body.length });
    res.end(req.body);
    return;
  }
  if (known || bytes) {
    return sendText(res, 405, `method ${req.method} not allowed on ${pathname}\n`);
  }
  sendText(res, 404, `no route for ${req.method} ${pathname}\n`);
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts the HTTPS demo server with a fresh self-signed certificate. */
export async function startDemoServer(opts: DemoServerOptions = {}): Promise<DemoServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer in 0..65535, got ${port}`);
  }
  const routes = new Map(Object.entries(opts.routes ?? {}));
  const requests: DemoRequest[] = [];
  const cert = await createSelfSignedCert();

  const server = createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    void (async () => {
      const request: DemoRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        body: await readBody(req),
        remotePort: req.socket.remotePort ?? 0,
      };
      requests.push(request);
      const pathname = new URL(request.path, 'https://demo.invalid').pathname;
      const custom = routes.get(`${request.method} ${pathname}`);
      await (custom ? custom(request, res) : serveBuiltin(request, res, pathname));
    })().catch((err: unknown) => {
      if (!res.headersSent) sendText(res, 500, `demo server error: ${String(err)}\n`);
      else res.destroy();
    });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await cert.remove();
    throw err;
  }

  const actualPort = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }).then(() => cert.remove());
    return closing;
  };

  return {
    url: `https://${urlHost(host)}:${actualPort}`,
    port: actualPort,
    host,
    certPath: cert.certPath,
    requests,
    close,
  };
}
