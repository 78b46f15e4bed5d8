// The fidelity server (support/fidelity-server.ts) as a child process, and real clients run
// against it: Debian's python3 with requests and httpx, node's fetch, curl.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createSelfSignedCert } from '../../src/demo/cert.js';
import type { SelfSignedCert } from '../../src/demo/cert.js';

/** Debian's python3, which has python3-requests, python3-httpx and python3-aiohttp. */
export const DEBIAN_PYTHON = '/usr/bin/python3';

const SERVER = fileURLToPath(new URL('./fidelity-server.js', import.meta.url));

/** A running fidelity server. */
export interface FidelityServer {
  port: number;
  pid: number;
  /** `https://127.0.0.1:PORT`. */
  url: string;
  stop(): Promise<void>;
}

/** Starts the fidelity server as a node process with a throwaway certificate. */
export async function startFidelityServer(): Promise<FidelityServer> {
  const cert: SelfSignedCert = await createSelfSignedCert();
  // --insecure-http-parser: llhttp refuses raw UTF-8 in a request target (`?q=ü`), which curl sends.
  const child: ChildProcess = spawn(process.execPath, ['--insecure-http-parser', SERVER, cert.certPath, cert.keyPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const { port, pid } = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      out += s;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as { port: number; pid: number });
    });
    child.once('exit', (code) => reject(new Error(`the fidelity server exited with ${code} before listening`)));
  });
  return {
    port,
    pid,
    url: `https://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await cert.remove();
    },
  };
}

/** What a client process did. */
export interface Run {
  pid: number;
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `file args` to its end (stdin closed), with `timeoutMs` before SIGKILL. */
export function runProcess(file: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (err += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ pid: child.pid ?? -1, code, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Runs a Python script with Debian's python3 (`sys.argv[1:]` = args). */
export function runPython(script: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return runProcess(DEBIAN_PYTHON, ['-c', script, ...args], opts);
}

/** Runs an ES module script with node (`process.argv.slice(1)` = args). */
export function runNode(script: string, args: string[]): Promise<Run> {
  return runProcess(process.execPath, ['--input-type=module', '-e', script, ...args], { env: { NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' } });
}
