// The web view's HTTP and WebSocket server. Every request needs the random token tlstap printed;
// the Host header must name this server and a browser's Origin must be this page's own (no
// DNS rebinding, no cross-origin reads); no CORS header is ever sent. Live updates go out on a
// WebSocket, and a browser that reads too slowly misses updates (it fetches the rows it missed
// later), never holding the capture back.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import type { CaptureContext } from '../events/types.js';
import { harEntry, harLog } from '../har/index.js';
import { packageRoot } from '../util/package-root.js';
import type { WebAddress } from './address.js';
import { ROW_FIELDS } from './store.js';
import type { WebStore } from './store.js';

/** A socket's unsent bytes beyond which updates are skipped for it. */
const MAX_BUFFERED = 1024 * 1024;
/** How often updates are pushed. */
const PUSH_MS = 100;

const ASSETS: Record<string, string> = { '/': 'index.html', '/app.js': 'app.js', '/app.css': 'app.css' };
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/** A running web view server. */
export interface WebServer {
  /** The URL to open, token included. */
  readonly url: string;
  readonly token: string;
  /** Updates skipped for slow browsers (they fetch the rows later). */
  readonly skippedUpdates: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', ...extra });
  res.end(body);
}

function json(res: ServerResponse, value: unknown, extra?: Record<string, string>): void {
  send(res, 200, 'application/json', JSON.stringify(value), extra);
}

/** Starts the server for `store` on `address`. */
export async function startWebServer(store: WebStore, address: WebAddress, ctx: CaptureContext, opts: { redact: boolean }): Promise<WebServer> {
  const token = randomBytes(18).toString('base64url');
  const tokenBytes = Buffer.from(token);
  const assetDir = join(packageRoot(), 'web');
  let allowedHosts = new Set<string>();

  /** Why a request is refused, or undefined when it may go on. */
  const refusal = (req: IncomingMessage, url: URL): string | undefined => {
    const host = req.headers.host ?? '';
    // Bound to every address (0.0.0.0, ::), the server cannot know its names: the token alone guards it.
    if (allowedHosts.size > 0 && !allowedHosts.has(host.toLowerCase())) return `Host ${host} is not this server`;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) return `cross-origin request from ${origin}`;
    if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site request';
    const given = Buffer.from(url.searchParams.get('token') ?? '');
    if (given.length !== tokenBytes.length || !timingSafeEqual(given, tokenBytes)) return 'missing or wrong token (use the URL tlstap printed)';
    return undefined;
  };

  /** The exchanges a download asks for: `{"seqs":[...]}`, or every one without `seqs`. */
  const requestedSeqs = (body: Buffer): number[] | undefined => {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { seqs?: unknown };
      return Array.isArray(parsed.seqs) ? parsed.seqs.filter((n): n is number => typeof n === 'number') : store.rows.map((r) => r[0]);
    } catch {
      return undefined;
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer): void => {
    const p = url.pathname;
    const q = url.searchParams;
    const asset = ASSETS[p];
    if (asset !== undefined && req.method === 'GET') {
      const text = readFileSync(join(assetDir, asset), 'utf8').replaceAll('__TOKEN__', token);
      send(res, 200, TYPES[asset.split('.').pop()!]!, text, { 'content-security-policy': "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; connect-src 'self'; frame-ancestors 'none'" });
      return;
    }
    if (p === '/api/info') return json(res, { fields: ROW_FIELDS, losses: store.losses, http: store.httpStats, ended: store.ended, skippedUpdates: server.skippedUpdates });
    if (p === '/api/rows') return json(res, store.rowsAfter(Number(q.get('after') ?? 0)));
    if (p === '/api/conns') return json(res, store.connections());
    if (p === '/api/conn') {
      const c = store.connection(q.get('key') ?? '');
      return c ? json(res, c) : send(res, 404, 'text/plain', 'no such connection');
    }
    if (p === '/api/call') {
      const bytes = store.callBytes(q.get('key') ?? '', Number(q.get('n')));
      return bytes ? send(res, 200, 'application/octet-stream', bytes) : send(res, 404, 'text/plain', 'no such call');
    }
    if (p === '/api/exchange') {
      const d = store.detail(Number(q.get('seq')));
      return d ? json(res, d) : send(res, 404, 'text/plain', 'no such exchange');
    }
    if (p === '/api/body') {
      const side = q.get('side') === 'request' ? 'request' : 'response';
      const bytes = store.body(Number(q.get('seq')), side);
      return bytes ? send(res, 200, 'application/octet-stream', bytes) : send(res, 404, 'text/plain', 'no such exchange');
    }
    if (p === '/api/search') return json(res, store.search(q.get('q') ?? ''));
    if (p === '/api/pcapng' && req.method === 'POST') {
      const seqs = requestedSeqs(body);
      if (seqs === undefined) return send(res, 400, 'text/plain', 'expected {"seqs":[...]}');
      const keys = new Set(seqs.flatMap((s) => { const row = store.rowAt(s); return row ? [row[11]] : []; }));
      void store.calls.pcapng(keys).then(
        (bytes) => send(res, 200, 'application/octet-stream', bytes, { 'content-disposition': 'attachment; filename="tlstap.pcapng"' }),
        (err: Error) => send(res, 500, 'text/plain', `pcapng export failed: ${err.message}\n`),
      );
      return;
    }
    if (p === '/api/har' && req.method === 'POST') {
      const seqs = requestedSeqs(body);
      if (seqs === undefined) return send(res, 400, 'text/plain', 'expected {"seqs":[...]}');
      const entries = seqs.flatMap((s) => {
        const ex = store.exchangeAt(s);
        return ex ? [harEntry(ex, ctx, { redact: opts.redact })] : [];
      });
      const doc = harLog(entries, `captured by tlstap, exported from the web view: ${entries.length} of ${store.rows.length} exchanges`);
      return json(res, doc, { 'content-disposition': 'attachment; filename="tlstap.har"' });
    }
    send(res, 404, 'text/plain', 'not found');
  };

  const http: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://tlstap.invalid');
    const why = refusal(req, url);
    if (why !== undefined) return send(res, 403, 'text/plain; charset=utf-8', `403 forbidden: ${why}\n`);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      try {
        handle(req, res, url, Buffer.concat(chunks));
      } catch (err) {
        send(res, 500, 'text/plain', `tlstap web view: ${(err as Error).message}\n`);
      }
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://tlstap.invalid');
    if (url.pathname !== '/ws' || refusal(req, url) !== undefined) {
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws));
  });

  // Pushes: the newest rows and changed connections, to every socket that keeps up.
  let lastPushed = 0;
  let dirty = true;
  store.onChange = () => (dirty = true);
  const push = () => {
    if (!dirty) return;
    dirty = false;
    const rows = store.rowsAfter(lastPushed);
    if (rows.length > 0) lastPushed = rows[rows.length - 1]![0];
    const message = JSON.stringify({ type: 'update', rows: rows.length > 5000 ? [] : rows, last: lastPushed, conns: store.takeChangedConnections(), losses: store.losses, ended: store.ended, http: store.httpStats });
    for (const ws of wss.clients as Set<WebSocket>) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED) {
        server.skippedUpdates++;
        continue;
      }
      ws.send(message);
    }
  };
  const timer = setInterval(push, PUSH_MS);
  timer.unref();

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(address.port, address.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const hostPart = address.host.includes(':') ? `[${address.host}]` : address.host;
  const anyAddress = address.host === '0.0.0.0' || address.host === '::';
  allowedHosts = anyAddress ? new Set() : new Set([`${hostPart}:${port}`, `localhost:${port}`]);
  const server = {
    url: `http://${hostPart}:${port}/?token=${token}`,
    token,
    skippedUpdates: 0,
    close: async () => {
      clearInterval(timer);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
  return server;
}
