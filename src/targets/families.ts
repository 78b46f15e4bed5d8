// The TLS APIs tlstap probes, grouped by the library that defines them, and the file names
// system discovery looks for. A new library is one more entry in LIBRARY_FAMILIES.
import type { ProbedFunction, TlsFunction } from '../events/types.js';

/** One TLS API: its plaintext functions, its lifecycle functions and the files that carry it. */
export interface LibraryFamily {
  /** The API's name, as messages and docs use it. */
  name: 'OpenSSL API' | 'GnuTLS' | 'NSPR';
  /** Functions whose calls carry plaintext (return probes too). */
  data: readonly TlsFunction[];
  /** The family's write function: an executable that defines it carries the library itself. */
  write: TlsFunction;
  /** Functions that only tell about a connection's fd and end. */
  lifecycle: readonly ProbedFunction[];
  /** File names of the shared library, as system discovery looks for them. */
  fileName: RegExp;
  /** What every such file name starts with: text without it names none of them. */
  fileStem: string;
}

/** The probed library APIs; every entry of PROBED_FUNCTIONS but Go's (GO_FUNCTIONS) belongs to exactly one. */
export const LIBRARY_FAMILIES: readonly LibraryFamily[] = [
  {
    // OpenSSL, LibreSSL and BoringSSL (Debian's android libssl.so.0, Android's conscrypt libssl.so).
    name: 'OpenSSL API',
    data: ['SSL_read', 'SSL_write', 'SSL_read_ex', 'SSL_write_ex'],
    write: 'SSL_write',
    lifecycle: ['SSL_set_fd', 'SSL_set_rfd', 'SSL_set_wfd', 'SSL_shutdown', 'SSL_free'],
    fileName: /^libssl\.so(?:\.\d+)*$/,
    fileStem: 'libssl.so',
  },
  {
    name: 'GnuTLS',
    data: ['gnutls_record_recv', 'gnutls_record_send'],
    write: 'gnutls_record_send',
    lifecycle: ['gnutls_transport_set_int2', 'gnutls_bye', 'gnutls_deinit'],
    // Not libgnutls-openssl, libgnutls-dane or libgnutlsxx: they call into libgnutls.so.30.
    fileName: /^libgnutls\.so(?:\.\d+)*$/,
    fileStem: 'libgnutls.so',
  },
  {
    // NSS pushes its SSL layer onto an NSPR file descriptor; plaintext goes through NSPR's PR_* I/O.
    name: 'NSPR',
    data: ['PR_Read', 'PR_Write', 'PR_Recv', 'PR_Send'],
    write: 'PR_Write',
    lifecycle: ['PR_Close'],
    fileName: /^libnspr4\.so$/,
    fileStem: 'libnspr4.so',
  },
];

/** The family a probed function belongs to. */
export function familyOf(name: ProbedFunction): LibraryFamily {
  const family = LIBRARY_FAMILIES.find((f) => f.data.includes(name as TlsFunction) || f.lifecycle.includes(name));
  if (family === undefined) throw new Error(`${name} belongs to no library family (update LIBRARY_FAMILIES)`);
  return family;
}

/** The family whose shared library has this file name (libssl.so.3, libgnutls.so.30, libnspr4.so). */
export function familyOfFileName(name: string): LibraryFamily | undefined {
  return LIBRARY_FAMILIES.find((f) => f.fileName.test(name));
}

/** True if the file name is one system discovery looks for. */
export function isTlsLibraryName(name: string): boolean {
  return familyOfFileName(name) !== undefined;
}

/**
 * False when `text` (a process's maps, say) certainly names no file system discovery looks for: no
 * family's file stem appears in it. A quick test before parsing it line by line.
 */
export function mayNameTlsLibrary(text: string): boolean {
  return LIBRARY_FAMILIES.some((f) => text.includes(f.fileStem));
}

/** Families of which `defined` holds at least one plaintext function, in LIBRARY_FAMILIES order. */
export function familiesDefined(defined: ReadonlySet<string>): LibraryFamily[] {
  return LIBRARY_FAMILIES.filter((f) => f.data.some((name) => defined.has(name)));
}

/** "a, b or c": for messages. */
export function orList(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]!}`;
}

