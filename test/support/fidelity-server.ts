// A Node HTTPS server for the HTTP fidelity end-to-end tests, run as its own process (so tlstap
// traces it like any server): HTTP/1.1 and HTTP/2 on one port (ALPN), and one route per case.
// Started as `node fidelity-server.js CERT KEY`; prints `{"port":N,"pid":P}` once it listens.
//
//   GET  /small              a short text
//   GET  /big?n=N            N bytes (a fixed pattern) in one res.end()
//   GET  /slow               5 MiB, 64 KiB every 20 ms (to cancel mid-body)
//   PUT|POST /echo           {"method","size","sha256"} of the request body
//   POST /json               the JSON body back
//   GET  /gzip, /br          a text body with that Content-Encoding
//   GET  /nocontent          204
//   GET  /cached             200 with an ETag; 304 when If-None-Match matches
//   GET  /redirect           302 to /small
//   GET  /cookie             the Cookie header's length
//   GET  /utf8               X-Name: José (UTF-8 bytes) and the request's x-name and URL back
//   GET  /trailers           a chunked body (HTTP/1.1) with an x-checksum trailer
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { brotliCompressSync, gzipSync } from 'node:zlib';

/** The bytes of /big?n=N: a repeating pattern that shows misplaced bytes. */
export function bigBody(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = 0x41 + (i % 26);
  return b;
}

/** The body of /gzip and /br before compression. */
export const TEXT = 'The quick brown fox jumps over the lazy dog. '.repeat(200);

/** The ETag of /cached. */
export const ETAG = '"v1"';

/** UTF-8 bytes of a header value as Node's latin-1 header writer must get them. */
function utf8Header(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

function readBody(req: Http2ServerRequest): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
  const url = new URL(req.url, 'https://x');
  const body = await readBody(req);
  switch (url.pathname) {
    case '/small':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('hello small\n');
      return;
    case '/big': {
      const data = bigBody(Number(url.searchParams.get('n') ?? '1000'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length }).end(data);
      return;
    }
    case '/slow': {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 5 * 1024 * 1024 });
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent >= 5 * 1024 * 1024) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(bigBody(64 * 1024));
        sent += 64 * 1024;
      }, 20);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case '/echo': {
      const reply = { method: req.method, size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
      return;
    }
    case '/json':
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    case '/gzip':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }).end(gzipSync(TEXT));
      return;
    case '/br':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'br' }).end(brotliCompressSync(TEXT));
      return;
    case '/nocontent':
      res.writeHead(204).end();
      return;
    case '/cached':
      if (req.headers['if-none-match'] === ETAG) res.writeHead(304, { etag: ETAG }).end();
      else res.writeHead(200, { etag: ETAG, 'content-type': 'text/plain' }).end('cached body\n');
      return;
    case '/redirect':
      res.writeHead(302, { location: '/small' }).end();
      return;
    case '/cookie':
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`cookie ${String(req.headers.cookie ?? '').length}\n`);
      return;
    case '/utf8': {
      const name = Buffer.from(String(req.headers['x-name'] ?? ''), 'latin1').toString('utf8');
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-name': utf8Header('José') });
      res.end(`${name} ${decodeURIComponent(url.search)}\n`);
      return;
    }
    case '/trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part one\n');
      res.write('part two\n');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}

function main(): void {
  const [certPath, keyPath] = process.argv.slice(2);
  const server = http2.createSecureServer({ cert: readFileSync(certPath!), key: readFileSync(keyPath!), allowHTTP1: true }, (req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0, pid: process.pid })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();
