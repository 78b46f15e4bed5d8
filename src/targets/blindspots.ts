// What tlstap can tell, before capturing, that it will not see in a process, why, and what to do:
// TLS linked into a stripped executable (Chromium's BoringSSL), SSL BIOs (BIO_f_ssl), and children
// that carry the traffic of the process named by -p (nginx's workers).
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { mappedFiles, parseProcMaps } from './proc-maps.js';
import type { ProbeTarget } from './types.js';

/** Something that will not be captured: why, and what to do about it. */
export interface Blindspot {
  reason: string;
  hint: string;
}

/**
 * Text that a TLS library leaves in read-only data even when linked in and stripped: its source file
 * names, and last the context string RFC 8446 makes every TLS 1.3 implementation carry.
 */
export const EMBEDDED_TLS: readonly { library: string; text: RegExp }[] = [
  { library: 'BoringSSL', text: /third_party\/boringssl\/|ssl\/handshake_client\.cc|\0BoringSSL\0/ },
  { library: 'OpenSSL', text: /ssl\/statem\/statem_(?:clnt|srvr)\.c|ssl\/statem\/extensions\.c/ },
  { library: 'GnuTLS', text: /Enabled GnuTLS / },
  { library: 'rustls', text: /rustls-\d+\.\d+/ },
  { library: 'a TLS 1.3 implementation', text: /TLS 1\.3, server CertificateVerify/ },
];
const EMBEDDED_PATTERN = new RegExp(EMBEDDED_TLS.map((e) => `(?:${e.text.source})`).join('|'));

/** The TLS library whose traces are in a file's read-only data, if any. */
export async function embeddedTls(path: string): Promise<string | undefined> {
  const { withElfFile } = await import('../elf/index.js');
  const hit = await withElfFile(path, (elf) => elf.findInSection('.rodata', EMBEDDED_PATTERN)).catch(() => undefined);
  return hit === undefined ? undefined : EMBEDDED_TLS.find((e) => e.text.test(hit))?.library;
}

/** Whether a program imports BIO_f_ssl (an SSL BIO, whose I/O bypasses SSL_read/SSL_write). */
async function importsSslBio(path: string): Promise<boolean> {
  const { withElfFile } = await import('../elf/index.js');
  const symbols = await withElfFile(path, (elf) => elf.symbols('dynsym')).catch(() => []);
  return symbols.some((s) => s.name === 'BIO_f_ssl' && !s.defined);
}

async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
}

/** The children of a process (every thread's), from /proc/PID/task/TID/children. */
async function childrenOf(pid: number): Promise<number[]> {
  const tids = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const lists = await Promise.all(tids.map((tid) => readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')));
  return [...new Set(lists.flatMap((l) => l.split(/\s+/).filter((w) => /^\d+$/.test(w)).map(Number)))];
}

/** Children that map one of the targets (compared by inode, as /proc/PID/maps shows it). */
async function childrenWithTls(pid: number, targets: readonly ProbeTarget[]): Promise<{ pid: number; comm: string }[]> {
  const inodes = new Set(targets.map((t) => t.ino));
  const found: { pid: number; comm: string }[] = [];
  for (const child of await childrenOf(pid)) {
    const maps = await readFile(`/proc/${child}/maps`, 'utf8').catch(() => '');
    if (mappedFiles(parseProcMaps(maps)).some((f) => f.executable && inodes.has(f.inode))) found.push({ pid: child, comm: await comm(child) });
  }
  return found;
}

function names(targets: readonly ProbeTarget[]): string {
  return targets.map((t) => basename(t.displayPath)).join(', ');
}

/**
 * What will not be seen of process `pid` with these targets (its mapped TLS code). Best effort: what
 * cannot be read is left out, never an error.
 */
export async function processBlindspots(pid: number, targets: readonly ProbeTarget[]): Promise<Blindspot[]> {
  const spots: Blindspot[] = [];
  const name = await comm(pid);
  const exe = `/proc/${pid}/exe`;
  const exeStat = await stat(exe, { bigint: true }).catch(() => undefined);
  const exeIsTarget = exeStat !== undefined && targets.some((t) => t.dev === exeStat.dev && t.ino === exeStat.ino);
  if (exeStat !== undefined && !exeIsTarget) {
    const library = await embeddedTls(exe);
    if (library !== undefined) {
      const mapped = targets.length > 0 ? `; the libraries it maps (${names(targets)}) are probed, but they do not carry that traffic` : '';
      spots.push({
        reason: `process ${pid} (${name}) has ${library} linked into its executable, stripped of the symbols tlstap finds SSL_read and SSL_write by: its own TLS traffic is not seen${mapped}`,
        hint: `give tlstap a build of the program with symbols (--lib PATH to it), or capture a program that uses a shared TLS library`,
      });
    }
    if (await importsSslBio(exe)) {
      spots.push({
        reason: `process ${pid} (${name}) uses SSL BIOs (BIO_f_ssl): what goes through one (openssl s_server -www or -WWW) is read and written inside libssl without SSL_read or SSL_write, so tlstap does not see it`,
        hint: 'a limit of tlstap: the BIO\'s own functions have no symbols in a release libssl. The same program\'s plain SSL_read/SSL_write I/O (openssl s_server without -www, s_client) is seen',
      });
    }
  }
  const children = await childrenWithTls(pid, targets);
  if (children.length > 0) {
    const list = children.map((c) => `${c.pid} (${c.comm})`).join(', ');
    const first = children[0]!;
    spots.push({
      reason: `process ${pid} (${name}) has ${children.length} child process${children.length > 1 ? 'es' : ''} mapping the same TLS code: ${list}; -p follows process ${pid} only, and children such as a server's workers carry the traffic`,
      hint: `capture a child with -p ${first.pid}, or all processes of that name with --comm ${first.comm}`,
    });
  }
  return spots;
}

/** Blindspots as text: one `note:` line and one `hint:` line each. */
export function formatBlindspots(spots: readonly Blindspot[], prefix = 'tlstap: '): string {
  return spots.map((s) => `${prefix}note: ${s.reason}\n  hint: ${s.hint}\n`).join('');
}
