// What tlstap probes: one file that holds the TLS functions, and where they are in it.
import type { GoTlsFunction, ProbedFunction } from '../events/types.js';

/** One probe of a Go program (src/targets/go-probes.ts plans them): a function's entry or one of Read's return instructions. */
export interface GoSite {
  /** File offset of the instruction (what a uprobe attaches by). */
  offset: bigint;
  kind: 'entry' | 'return-site';
  func: GoTlsFunction;
}

/** The TLS library a file carries, as far as its symbols and read-only data tell. */
export type TlsFlavour = 'OpenSSL' | 'BoringSSL' | 'LibreSSL' | 'GnuTLS' | 'NSS' | 'Go' | 'unknown';

/** One TLS function to attach a uprobe to. */
export interface ProbeFunction {
  name: ProbedFunction;
  /** Where the function's first instruction is in the file (what uprobes attach by). */
  fileOffset: bigint;
  /** The symbol's virtual address, for messages and checks. */
  address: bigint;
  /** The symbol version (e.g. OPENSSL_3.0.0), when the library versions its symbols. */
  version?: string;
}

/** A file to probe, found on the system, in a process, or named by the user. */
export interface ProbeTarget {
  /** Path to attach through (may be /proc/PID/root/... for a file only a container sees). */
  path: string;
  /** How a user knows the file. */
  displayPath: string;
  /** Device and inode of the real file: one file reached by several paths is one target. */
  dev: bigint;
  ino: bigint;
  flavour: TlsFlavour;
  version?: string;
  /** The CPU the file is built for ('x86_64', 'aarch64'): always this machine's, or it is not a target. */
  arch: string;
  buildId?: string;
  /** The functions found, in PROBED_FUNCTIONS order; at least one carries plaintext. */
  functions: ProbeFunction[];
  /** Functions of the file's TLS APIs (LIBRARY_FAMILIES) that it does not define. */
  missing: ProbedFunction[];
  /** A Go program's probes (its `functions` are then Go's, attached through these, never as a library's). */
  goSites?: readonly GoSite[];
  /** How the target was found. */
  source: 'system' | 'process' | 'lib-option' | 'executable';
}
