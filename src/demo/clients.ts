// Real TLS clients (curl, python3, node) run against a URL, each as its own process.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { basename } from 'node:path';

/** What a client process did. */
export interface ClientResult {
  /** The client's pid; it stays the same for the whole run (wrappers exec the client). */
  pid: number;
  /** What /proc/PID/comm reads while the client does TLS: curl, python3 or node. */
  comm: string;
  /** The response body, byte-exact (empty when curl wrote it to outFile). */
  stdout: Buffer;
  stderr: string;
  /** The exit status, or null if a signal ended the client. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True if the client was killed for running longer than timeoutMs. */
  timedOut: boolean;
}

/** Options every client takes. */
export interface ClientOptions {
  /** If set, the request is a POST with this body (Content-Type: application/octet-stream). */
  body?: Buffer | string;
  /** Wait this long inside the client process before connecting, so a tracer can attach by pid. */
  startDelayMs?: number;
  /** Kill the client (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /** Called with the pid as soon as the process exists. */
  onSpawn?: (pid: number) => void;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
}

/** Options for curlFetch. */
export interface CurlOptions extends ClientOptions {
  /** Pass --http1.1 (default true; the demo server speaks HTTP/1.1 only anyway). */
  http1_1?: boolean;
  /** Pass -k (default true). With false, give caFile. */
  insecure?: boolean;
  /** Trust this CA file (--cacert). */
  caFile?: string;
  /** Write the body here (-o) instead of stdout. */
  outFile?: string;
  /** More curl arguments, placed before the URL. */
  extraArgs?: string[];
}

/** comm is the executable's file name, cut to 15 bytes by the kernel (TASK_COMM_LEN - 1). */
function commOf(path: string): string {
  return basename(path).slice(0, 15);
}

interface Launch {
  file: string;
  args: string[];
  comm: string;
}

/**
 * Writes `input` to a child's stdin and closes it. A child that is done before it reads its stdin (a fast
 * download, an early error) has closed the pipe: EPIPE then says nothing its exit status does not, and is
 * ignored; any other failure goes to `onError`.
 */
export function feedStdin(child: ChildProcessWithoutNullStreams, input: Buffer | string, onError: (message: string) => void): void {
  child.stdin.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') onError(e.message);
  });
  child.stdin.end(input);
}

function run(launch: Launch, opts: ClientOptions): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(launch.file, launch.args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${launch.comm} (${launch.file}): ${e.message}`));
    });
    child.once('spawn', () => {
      // Without a body stdin is closed at once: no client waits on it.
      feedStdin(child, opts.body ?? '', (message) => err.push(Buffer.from(`tlstap demo: stdin of ${launch.comm}: ${message}\n`)));
      if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        pid: child.pid ?? -1,
        comm: launch.comm,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode,
        signal,
        timedOut,
      });
    });
  });
}

function delaySeconds(opts: ClientOptions): number {
  const ms = opts.startDelayMs ?? 0;
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`startDelayMs must be >= 0, got ${ms}`);
  return ms / 1000;
}

function postFlag(opts: ClientOptions): string {
  return opts.body === undefined ? '0' : '1';
}

/** Fetches url with `curl --http1.1 -sSk` (GET, or POST of opts.body). */
export function curlFetch(url: string, opts: CurlOptions = {}): Promise<ClientResult> {
  const args = ['-sS'];
  if (opts.insecure ?? true) args.push('-k');
  if (opts.caFile !== undefined) args.push('--cacert', opts.caFile);
  if (opts.http1_1 ?? true) args.push('--http1.1');
  if (opts.outFile !== undefined) args.push('-o', opts.outFile);
  if (opts.body !== undefined) {
    args.push('--data-binary', '@-', '-H', 'Content-Type: application/octet-stream');
  }
  args.push(...(opts.extraArgs ?? []), '--', url);
  const delay = delaySeconds(opts);
  if (delay === 0) return run({ file: 'curl', args, comm: 'curl' }, opts);
  // sh sleeps, then execs curl: same pid, and comm becomes "curl" before any TLS happens.
  const script = 'sleep "$1"; shift; exec "$@"';
  const shArgs = ['-c', script, 'sh', String(delay), 'curl', ...args];
  return run({ file: 'sh', args: shArgs, comm: 'curl' }, opts);
}

const PYTHON_CLIENT = `
import ssl, sys, time, urllib.error, urllib.request
url, delay, post = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
data = sys.stdin.buffer.read() if post else None
if delay > 0:
    time.sleep(delay)
ctx = ssl._create_unverified_context()
req = urllib.request.Request(url, data=data, method="POST" if post else "GET")
if post:
    req.add_header("Content-Type", "application/octet-stream")
try:
    resp = urllib.request.urlopen(req, context=ctx, timeout=60)
except urllib.error.HTTPError as e:
    resp = e
out = sys.stdout.buffer
while True:
    chunk = resp.read(65536)
    if not chunk:
        break
    out.write(chunk)
out.flush()
`;

let pythonPath: string | undefined;

/** The real python3 binary behind PATH, so the client's pid is python's from the start. */
export function pythonExecutable(): string {
  // pyenv's python3 on PATH is a bash shim that execs the real binary; skip that detour.
  pythonPath ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], {
    encoding: 'utf8',
  }).trim();
  return pythonPath;
}

/** Fetches url with python3's urllib and an unverified SSL context. */
export function pythonFetch(url: string, opts: ClientOptions = {}): Promise<ClientResult> {
  const file = pythonExecutable();
  const args = ['-c', PYTHON_CLIENT, url, String(delaySeconds(opts)), postFlag(opts)];
  return run({ file, args, comm: commOf(file) }, opts);
}

const NODE_CLIENT = `
const https = require('node:https');
const [url, delay, post] = process.argv.slice(1);
const chunks = [];
const go = () => {
  const body = Buffer.concat(chunks);
  const req = https.request(url, {
    method: post === '1' ? 'POST' : 'GET',
    rejectUnauthorized: false,
    agent: false,
    headers: post === '1'
      ? { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length }
      : {},
  }, (res) => res.pipe(process.stdout));
  req.on('error', (e) => { console.error(String(e)); process.exitCode = 1; });
  req.end(post === '1' ? body : undefined);
};
const start = () => setTimeout(go, Number(delay) * 1000);
if (post === '1') {
  process.stdin.on('data', (c) => chunks.push(c));
  process.stdin.on('end', start);
} else {
  start();
}
`;

/** Fetches url with a `node -e` script: https.request with rejectUnauthorized false. */
export function nodeFetch(url: string, opts: ClientOptions = {}): Promise<ClientResult> {
  const args = ['-e', NODE_CLIENT, url, String(delaySeconds(opts)), postFlag(opts)];
  return run({ file: process.execPath, args, comm: commOf(process.execPath) }, opts);
}
