// Which TLS library a file carries, and its version: from marker symbols and read-only data.
// Table-driven: a new flavour is one more entry in FLAVOUR_RULES.
import type { ElfFile } from '../elf/index.js';
import type { TlsFlavour } from './types.js';

/** How to recognise one TLS library. */
export interface FlavourRule {
  flavour: Exclude<TlsFlavour, 'unknown'>;
  /** Defined functions only this library has; any one of them settles the flavour. */
  symbols: readonly string[];
  /** Text in read-only data that only this library has; capture group 1, if any, is the version. */
  text: RegExp;
  /** Whether the flavour has a version to find (BoringSSL has none). */
  versioned: boolean;
  /**
   * Where the version is when `text` does not capture it: looked for in read-only data only once the
   * flavour is settled, because on its own it is too plain to prove anything (NSPR's "4.35").
   */
  versionText?: RegExp;
}

/** The known flavours, most specific first (BoringSSL also calls itself "OpenSSL ... compatible"). */
export const FLAVOUR_RULES: readonly FlavourRule[] = [
  {
    flavour: 'BoringSSL',
    symbols: ['BORINGSSL_self_test', 'SSL_CTX_set_grease_enabled', 'SSL_CTX_set_strict_cipher_list'],
    // OpenSSL_version() returns "BoringSSL"; OPENSSL_VERSION_TEXT ends in "(compatible; BoringSSL)".
    text: /\0BoringSSL\0|\(compatible; BoringSSL\)/,
    versioned: false,
  },
  {
    flavour: 'LibreSSL',
    symbols: [],
    // OPENSSL_VERSION_TEXT, e.g. "LibreSSL 3.8.2".
    text: /LibreSSL (\d+\.\d+\.\d+)/,
    versioned: true,
  },
  {
    flavour: 'GnuTLS',
    symbols: ['gnutls_global_init', 'gnutls_check_version'],
    // lib/global.c logs "Enabled GnuTLS " VERSION " logging..." at start.
    text: /Enabled GnuTLS (\d+\.\d+\.\d+)/,
    versioned: true,
  },
  {
    // NSS's plaintext goes through NSPR (libnspr4), so NSPR is what is probed and what is recognised:
    // its version description (prvrsion.c) says "Portable runtime", and PR_GetVersion() returns
    // PR_VERSION, a string of its own ("4.35", "4.36 Beta").
    flavour: 'NSS',
    symbols: ['PR_GetVersion', 'PR_ImportTCPSocket'],
    text: /\0Portable runtime\0/,
    versioned: true,
    versionText: /\0(4\.\d{1,3}(?:\.\d{1,3})?)(?: Beta)?\0/,
  },
  {
    flavour: 'OpenSSL',
    symbols: [],
    // OPENSSL_VERSION_TEXT, e.g. "OpenSSL 3.0.19 27 Jan 2026" or "OpenSSL 1.1.1w  11 Sep 2023".
    text: /OpenSSL (\d+\.\d+\.\d+[a-z]{0,2}(?:-[\w.]+)?) +\d{1,2} [A-Z][a-z]{2} \d{4}/,
    versioned: true,
  },
];

/** Every marker symbol of every rule, looked up when the read-only data leaves the flavour open. */
export const FLAVOUR_MARKER_SYMBOLS: readonly string[] = FLAVOUR_RULES.flatMap((r) => r.symbols);

/** One regex that matches any rule's text, so a section is scanned once. */
export const FLAVOUR_TEXT_PATTERN = new RegExp(FLAVOUR_RULES.map((r) => `(?:${r.text.source})`).join('|'));

/** Sections where the version text lives. */
export const FLAVOUR_TEXT_SECTIONS: readonly string[] = ['.rodata'];

/** What detection found. */
export interface FlavourInfo {
  flavour: TlsFlavour;
  version?: string;
}

/** The flavour a set of defined symbol names proves, if any. */
export function flavourFromSymbols(defined: { has(name: string): boolean }): FlavourRule | undefined {
  return FLAVOUR_RULES.find((r) => r.symbols.some((s) => defined.has(s)));
}

/** Classifies a piece of read-only text (e.g. a FLAVOUR_TEXT_PATTERN match). */
export function flavourFromText(text: string): FlavourInfo | undefined {
  for (const rule of FLAVOUR_RULES) {
    const m = rule.text.exec(text);
    if (m) return m[1] === undefined ? { flavour: rule.flavour } : { flavour: rule.flavour, version: m[1] };
  }
  return undefined;
}

/** Scans one file's read-only data for a flavour text. */
export async function flavourFromData(elf: ElfFile): Promise<FlavourInfo | undefined> {
  for (const section of FLAVOUR_TEXT_SECTIONS) {
    const hit = await elf.findInSection(section, FLAVOUR_TEXT_PATTERN);
    if (hit !== undefined) {
      const info = flavourFromText(hit);
      if (info) return info;
    }
  }
  return undefined;
}

/** Companion libraries to look in when a file itself has no version text (libssl → libcrypto). */
export const COMPANION_LIBRARY = /^lib(?:crypto|boringcrypto)[.-]/;

// Text first: it is one bounded scan and also gives the version, while a marker symbol that is absent
// from .dynsym sends the lookup through the whole .symtab (slow in a big unstripped executable).
async function inspectOne(elf: ElfFile): Promise<FlavourInfo | undefined> {
  let info = await flavourFromData(elf);
  if (info === undefined || !complete(info)) {
    const rule = flavourFromSymbols(await elf.findFunctions(FLAVOUR_MARKER_SYMBOLS));
    if (rule && info?.flavour !== rule.flavour) info = { flavour: rule.flavour };
  }
  if (info !== undefined && !complete(info)) {
    const version = await versionFromData(elf, info.flavour);
    if (version !== undefined) info = { flavour: info.flavour, version };
  }
  return info;
}

/** A settled flavour's version from its rule's versionText, if it has one. */
async function versionFromData(elf: ElfFile, flavour: TlsFlavour): Promise<string | undefined> {
  const pattern = FLAVOUR_RULES.find((r) => r.flavour === flavour)?.versionText;
  if (pattern === undefined) return undefined;
  for (const section of FLAVOUR_TEXT_SECTIONS) {
    const hit = await elf.findInSection(section, pattern);
    const version = hit === undefined ? undefined : pattern.exec(hit)?.[1];
    if (version !== undefined) return version;
  }
  return undefined;
}

function complete(info: FlavourInfo): boolean {
  return info.version !== undefined || FLAVOUR_RULES.find((r) => r.flavour === info.flavour)?.versioned !== true;
}

/**
 * Detects a file's flavour from its read-only data and marker symbols, then, if that leaves the
 * flavour or version open, from its companion library (libssl's libcrypto); `openCompanion` opens a
 * DT_NEEDED name and runs the callback on it.
 */
export async function detectFlavour(
  elf: ElfFile,
  openCompanion: <T>(name: string, fn: (companion: ElfFile) => Promise<T>) => Promise<T | undefined>,
): Promise<FlavourInfo> {
  const own = await inspectOne(elf);
  if (own && complete(own)) return own;
  for (const name of await elf.neededLibraries()) {
    if (!COMPANION_LIBRARY.test(name)) continue;
    const found = await openCompanion(name, (companion) => inspectOne(companion)).catch(() => undefined);
    if (found && (own === undefined || found.flavour === own.flavour)) return found;
  }
  return own ?? { flavour: 'unknown' };
}
