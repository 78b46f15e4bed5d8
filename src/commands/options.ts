import { accessSync, constants } from 'node:fs';
import { isatty } from 'node:tty';
import { InvalidArgumentError, Option } from './commander.js';
import { EVENT_LAYOUT } from '../events/layout.js';
import { parseIpAddress } from '../events/addresses.js';
import { FORMAT_NAMES } from '../output/index.js';
import { parseWebAddress } from '../web/address.js';


/** Every stdout format: the plain ones, `http`, and `none` (only the file outputs). */
export const OUTPUT_FORMATS = ['http', ...FORMAT_NAMES, 'none'] as const;
/** A stdout format name. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/**
 * `http` on a terminal, `text` when piped or redirected. Asks about fd 1 without touching
 * process.stdout, whose stream (made on first use, ~2 ms) a capture with -o never needs.
 */
export function defaultFormat(): OutputFormat {
  return isatty(1) ? 'http' : 'text';
}

/** Parsed options of a capture (and, where they apply, of replay). */
export interface CaptureOptions {
  pid?: number;
  uid?: number;
  comm?: string;
  lib: string[];
  maxBytes: number;
  format: OutputFormat;
  har?: string;
  pcapng?: string;
  redact: boolean;
  output?: string;
  record?: string;
  ringBuffer: number;
  btf?: string;
  port?: number;
  host?: string;
  duration?: number;
  verbose: boolean;
}

const MIB = 1024 * 1024;
const PAGE = 4096;

/** Parses `123`, `64k`, `16m` into bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)([kmg]i?b?)?$/i.exec(text.trim());
  if (!match) throw new InvalidArgumentError('expected a size such as 65536, 64k or 16m');
  const unit = (match[2] ?? '').charAt(0).toLowerCase();
  const scale = unit === 'k' ? 1024 : unit === 'm' ? MIB : unit === 'g' ? 1024 * MIB : 1;
  return Number(match[1]) * scale;
}

function parseNonNegativeInt(text: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('expected a whole number');
  return Number(text);
}

function parsePid(text: string): number {
  const pid = parseNonNegativeInt(text);
  if (pid < 1) throw new InvalidArgumentError('a process id is 1 or more');
  return pid;
}

function parseMaxBytes(text: string): number {
  const bytes = parseSize(text);
  const max = EVENT_LAYOUT.constants.MAX_CALL_BYTES;
  if (bytes < 1 || bytes > max) throw new InvalidArgumentError(`must be between 1 and ${max} (4m) bytes per call`);
  return bytes;
}

function parseRingBuffer(text: string): number {
  const bytes = parseSize(text);
  if (bytes < PAGE || bytes > 1024 * MIB || (bytes & (bytes - 1)) !== 0) {
    throw new InvalidArgumentError('must be a power of two between 4k and 1g, e.g. 16m');
  }
  return bytes;
}

function parseSeconds(text: string): number {
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return seconds;
}

function parsePort(text: string): number {
  const port = parseNonNegativeInt(text);
  if (port < 1 || port > 65535) throw new InvalidArgumentError('a port is between 1 and 65535');
  return port;
}

function parseHost(text: string): string {
  if (!parseIpAddress(text)) throw new InvalidArgumentError('expected an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1');
  return text;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseReadableFile(text: string): string {
  try {
    accessSync(text, constants.R_OK);
  } catch {
    throw new InvalidArgumentError(`cannot read ${text}`);
  }
  return text;
}

/** The output options, shared by a capture and `tlstap replay`. */
export function outputOptions(): Option[] {
  return [
    new Option('-f, --format <format>', 'output format: http is one block per HTTP exchange; text, hex and jsonl one per call; none writes only -w/--har/--record')
      .choices(OUTPUT_FORMATS)
      .default(defaultFormat(), 'http on a terminal, else text'),
    new Option('-o, --output <file>', 'write the output to a file (mode 0600) instead of stdout'),
    new Option('-w, --pcapng <file>', 'also write pcapng for Wireshark to a file (mode 0600), or - for stdout'),
    new Option('--har <file>', 'also write the HTTP exchanges as HAR 1.2 (mode 0600)'),
    new Option('--redact', 'mask Authorization, Cookie, Set-Cookie, Proxy-Authorization and API-key headers').default(false),
    new Option('--web [address]', 'serve a live web view of the exchanges on [HOST:]PORT (default 127.0.0.1, any free port); prints its URL with a token').argParser(parseWebAddress),
  ];
}

/** The capture options, declared once for commander (and so for --help). */
export function captureOptions(): Option[] {
  return [
    new Option('-p, --pid <pid>', 'only this process; probes every TLS library it has mapped, its executable included').argParser(parsePid),
    new Option('--uid <uid>', 'only processes of this user id (filtered in the kernel)').argParser(parseNonNegativeInt),
    new Option('--comm <name>', 'only threads with this name (first 15 bytes, as the kernel keeps them)'),
    new Option('--port <port>', 'only connections whose local or remote port is this (filtered in the kernel)').argParser(parsePort),
    new Option('--host <address>', 'only connections whose local or remote address is this (IPv4 or IPv6)').argParser(parseHost),
    new Option('--lib <path>', 'also probe this library or statically linked program (repeatable)').argParser(collect).default([]),
    new Option('--max-bytes <size>', 'bytes copied per call at most; the rest is counted as truncated').argParser(parseMaxBytes).default(EVENT_LAYOUT.constants.DEFAULT_CALL_BYTES, '1m'),
    ...outputOptions(),
    new Option('--record <file>', 'also write the raw event stream to a file for `tlstap replay`'),
    new Option('--ring-buffer <size>', 'kernel ring buffer size, a power of two').argParser(parseRingBuffer).default(16 * MIB, '16m'),
    new Option('--btf <file>', 'the kernel\'s BTF (a vmlinux or .btf file) where /sys/kernel/btf/vmlinux is missing; without any BTF, addresses are unknown').argParser(parseReadableFile),
    new Option('--duration <seconds>', 'stop after this many seconds').argParser(parseSeconds),
    new Option('-v, --verbose', 'list the probed files at start, and print a stats line on stderr every second').default(false),
  ];
}

/** The options as a Markdown table (flags, meaning, default), for the README. */
export function optionsTable(options: readonly Option[]): string {
  const rows = options.map((o) => {
    const fallback = o.defaultValueDescription ?? (o.defaultValue === undefined || o.defaultValue === false || Array.isArray(o.defaultValue) ? undefined : String(o.defaultValue));
    const choices = o.argChoices ? ` (${o.argChoices.join(', ')})` : '';
    const meaning = `${o.description}${choices}${fallback === undefined ? '' : `; default ${fallback}`}`;
    return `| \`${o.flags}\` | ${meaning.replace(/\|/g, '\\|')} |`;
  });
  return ['| option | meaning |', '| --- | --- |', ...rows].join('\n');
}
