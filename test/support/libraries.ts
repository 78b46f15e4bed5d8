// Real clients of the other TLS libraries, each run as its own process: wget (GnuTLS), bssl-tool
// (BoringSSL from Debian's android-boringssl) and our NSS client (test/support/nss-client.c).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { feedStdin } from '../../src/demo/clients.js';
import type { ClientResult } from '../../src/demo/clients.js';

/** The repository root (this file runs from dist/test/support/). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Where test/support/build-nss-client.sh puts the NSS client. */
export const NSS_CLIENT = `${ROOT}build/nss-client`;

/** What a client process did: the demo clients' result, without their timeout flag. */
export type LibraryClientResult = Omit<ClientResult, 'timedOut'>;

/** Runs file with args, stdin from `input`, killing it after timeoutMs. */
function run(file: string, args: readonly string[], comm: string, input = '', timeoutMs = 30_000): Promise<LibraryClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${e.message}`));
    });
    child.once('spawn', () => feedStdin(child, input, (message) => err.push(Buffer.from(`stdin of ${file}: ${message}\n`))));
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        pid: child.pid ?? -1,
        comm,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8'),
        exitCode,
        signal,
      });
    });
  });
}

/** `wget -q -O - --no-check-certificate URL`: Debian's wget does TLS with GnuTLS. */
export function wgetFetch(url: string): Promise<LibraryClientResult> {
  return run('wget', ['-q', '-O', '-', '--no-check-certificate', url], 'wget');
}

/**
 * `bssl-tool client -connect HOST:PORT` with an HTTP/1.1 request on stdin. bssl copies stdin to the
 * connection and the connection to stdout; with `Connection: close` the server ends the connection after
 * the response, and bssl exits. It prints the handshake summary on stderr. It never checks certificates
 * unless given -root-certs.
 */
export function bsslFetch(host: string, port: number, path: string): Promise<LibraryClientResult> {
  const request = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`;
  return run('bssl-tool', ['client', '-connect', `${host}:${port}`], 'bssl-tool', request);
}

/** Builds build/nss-client if it is missing or older than its source (what scripts/setup.sh does too). */
export function ensureNssClient(): string {
  execFileSync('bash', [`${ROOT}test/support/build-nss-client.sh`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!existsSync(NSS_CLIENT)) throw new Error(`${NSS_CLIENT} was not built`);
  return NSS_CLIENT;
}

/** `nss-client HOST PORT PATH [FILE]`: reads FILE through NSPR first, then fetches PATH over NSS. */
export function nssFetch(host: string, port: number, path: string, fileToRead?: string): Promise<LibraryClientResult> {
  const args = [host, String(port), path, ...(fileToRead === undefined ? [] : [fileToRead])];
  return run(NSS_CLIENT, args, 'nss-client');
}
