// Runs Debian's nginx as a TLS server on a loopback port, with a throwaway certificate and
// its own config, logs and document root in a temp dir: a real server for end-to-end tests.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSelfSignedCert } from '../../src/demo/cert.js';

/** A running nginx. */
export interface NginxServer {
  port: number;
  /** The nginx process started (the master when it runs workers). */
  pid: number;
  /** `https://127.0.0.1:PORT` (or `https://[::1]:PORT` when started on ::1). */
  url: string;
  /** Files served, by path (e.g. '/a.txt'). */
  root: string;
  /** The access log lines so far: `REMOTE_ADDR REMOTE_PORT METHOD URI PROTOCOL STATUS BYTES`. */
  accessLog(): string[];
  stop(): Promise<void>;
}

/** Options of startNginx. */
export interface NginxOptions {
  /** Files to serve: path (like '/a.txt') → content. */
  files?: Record<string, string | Buffer>;
  /** Listen on ::1 instead of 127.0.0.1. */
  ipv6?: boolean;
  /** More directives for the server block (e.g. add_header). */
  serverConfig?: string;
  /** Run as nginx usually runs: a master process and `workers` worker processes that carry the traffic. */
  workers?: number;
}

const NGINX = '/usr/sbin/nginx';

/** A free TCP port on loopback. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Starts nginx with TLS and HTTP/2 on a free loopback port; resolves once it accepts connections. */
export async function startNginx(opts: NginxOptions = {}): Promise<NginxServer> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install nginx (scripts/setup.sh installs it)`);
  const host = opts.ipv6 ? '::1' : '127.0.0.1';
  const port = await freePort(host);
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-nginx-'));
  const root = join(dir, 'www');
  mkdirSync(root);
  for (const [path, content] of Object.entries(opts.files ?? {})) writeFileSync(join(root, path), content);
  const cert = await createSelfSignedCert();
  const listen = opts.ipv6 ? `[::1]:${port}` : `127.0.0.1:${port}`;
  const conf = `
daemon off;
${opts.workers ? 'user root;' : ''}
master_process ${opts.workers ? 'on' : 'off'};
worker_processes ${opts.workers ?? 1};
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  log_format tlstap '$remote_addr $remote_port $request_method $request_uri $server_protocol $status $body_bytes_sent';
  access_log ${dir}/access.log tlstap;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type application/octet-stream;
  server {
    listen ${listen} ssl http2;
    ssl_certificate ${cert.certPath};
    ssl_certificate_key ${cert.keyPath};
    root ${root};
    keepalive_requests 10000;
    ${opts.serverConfig ?? ''}
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(host, port, child, () => stderr);
  const url = opts.ipv6 ? `https://[::1]:${port}` : `https://127.0.0.1:${port}`;
  return {
    port,
    pid: child.pid!,
    url,
    root,
    accessLog: () => {
      const path = join(dir, 'access.log');
      return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l) : [];
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
      await cert.remove();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPort(host: string, port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const { connect } = await import('node:net');
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited at start: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on ${host}:${port}: ${stderr()}`);
}
