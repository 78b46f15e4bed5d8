import { accessSync, constants } from 'node:fs';
import { isatty } from 'node:tty';
import { Command, InvalidArgumentError, Option } from './commander.js';
import { EVENT_LAYOUT } from '../events/layout.js';
import { parseIpAddress } from '../events/addresses.js';
import { FORMAT_NAMES } from '../output/formats.js';
import { parseWebAddress } from '../web/address.js';
import { CliError } from './errors.js';
import type { OutputOptions } from './outputs.js';
import type { NamedPath } from '../util/private-file.js';


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
  /** Connections the kernel tracks at once. */
  connections: number;
  port?: number;
  host?: string;
  duration?: number;
  verbose: boolean;
  /** -f was given on the command line (not the default). */
  formatGiven?: boolean;
  /** Capture on another machine through tlstap-agent, reached by this command (docs/agent.md). */
  remote?: string;
  /** Where the agent lives there. */
  agentPath?: string;
  /** Android: only this app (by its uid from /data/system/packages.list). */
  package?: string;
  /** With --remote: write the capture's plan here for `tlstap-agent --plan` instead of capturing. */
  planOut?: string;
}

const MIB = 1024 * 1024;

/** Parses `123`, `64k`, `16m` into bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)([kmg]i?b?)?$/i.exec(text.trim());
  if (!match) throw new InvalidArgumentError('expected a size such as 65536, 64k or 16m');
  const unit = (match[2] ?? '').charAt(0).toLowerCase();
  const scale = unit === 'k' ? 1024 : unit === 'm' ? MIB : unit === 'g' ? 1024 * MIB : 1;
  return Number(match[1]) * scale;
}

/** Largest user id: (uid_t)-1 means "no user" to the kernel. */
const MAX_UID = 0xfffffffe;
/** Largest process id Linux hands out (PID_MAX_LIMIT). */
const MAX_PID = 4 * 1024 * 1024;
/** Bytes the ring buffer needs for one record: its 8-byte header, a data record and one full chunk. */
const RING_RECORD_BYTES = 8 + EVENT_LAYOUT.data.size + EVENT_LAYOUT.constants.CHUNK_SIZE;
/** The smallest ring buffer that holds one record: a power of two, as the kernel wants. */
export const MIN_RING_BUFFER = 2 ** Math.ceil(Math.log2(RING_RECORD_BYTES));

/** A whole number between min and max, written in decimal digits only. */
function parseWholeNumber(text: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`expected ${what}: a whole number`);
  const value = Number(text);
  if (value < min || value > max) throw new InvalidArgumentError(`${what} is between ${min} and ${max}`);
  return value;
}

/**
 * A filter that takes one value: a second one is refused rather than silently replacing the first
 * (the kernel filters on one value of each).
 */
function once<T>(flag: string, parse: (text: string) => T): (text: string, previous: T | undefined) => T {
  return (text, previous) => {
    if (previous !== undefined) throw new InvalidArgumentError(`${flag} takes one value; run one tlstap per value`);
    return parse(text);
  };
}

function parsePid(text: string): number {
  return parseWholeNumber(text, 1, MAX_PID, 'a process id');
}

function parseUid(text: string): number {
  return parseWholeNumber(text, 0, MAX_UID, 'a user id');
}

function parseComm(text: string): string {
  if (text === '') throw new InvalidArgumentError('expected a thread name, not an empty string');
  return text;
}

function parseMaxBytes(text: string): number {
  const bytes = parseSize(text);
  const max = EVENT_LAYOUT.constants.MAX_CALL_BYTES;
  if (bytes < 1 || bytes > max) throw new InvalidArgumentError(`must be between 1 and ${max} (4m) bytes per call`);
  return bytes;
}

function parseRingBuffer(text: string): number {
  const bytes = parseSize(text);
  if (bytes < MIN_RING_BUFFER || bytes > 1024 * MIB || (bytes & (bytes - 1)) !== 0) {
    throw new InvalidArgumentError(
      `must be a power of two between ${MIN_RING_BUFFER / 1024}k (one ${RING_RECORD_BYTES}-byte record) and 1g, e.g. 16m`,
    );
  }
  return bytes;
}

/** Most connections the kernel may track at once (its maps are allocated up front, ~200 bytes each). */
const MAX_CONNECTIONS = 1024 * 1024;

function parseConnections(text: string): number {
  return parseWholeNumber(text, 16, MAX_CONNECTIONS, 'a number of connections');
}

function parseSeconds(text: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('expected a positive number of seconds, e.g. 30 or 0.5');
  return seconds;
}

function parsePort(text: string): number {
  return parseWholeNumber(text, 1, 65535, 'a port');
}

function parseHost(text: string): string {
  if (!parseIpAddress(text)) throw new InvalidArgumentError('expected an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1');
  return text;
}

function parseRemote(text: string): string {
  if (text.trim() === '') throw new InvalidArgumentError("expected a command, e.g. 'ssh root@host' or 'adb shell su -c'");
  return text;
}

function parseAgentPath(text: string): string {
  if (!text.startsWith('/')) throw new InvalidArgumentError('expected an absolute path on the remote machine, e.g. /data/local/tmp/tlstap-agent');
  return text;
}

function parsePackage(text: string): string {
  if (!/^[A-Za-z0-9_.]+$/.test(text)) throw new InvalidArgumentError('expected an Android package name, e.g. com.android.chrome');
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
    new Option('-p, --pid <pid>', 'only this process; probes every TLS library it has mapped, its executable included (once)').argParser(once('--pid', parsePid)),
    new Option('--uid <uid>', 'only processes of this user id (filtered in the kernel; once)').argParser(once('--uid', parseUid)),
    new Option('--comm <name>', 'only threads with this name (first 15 bytes, as the kernel keeps them; once)').argParser(once('--comm', parseComm)),
    new Option('--port <port>', 'only connections whose local or remote port is this (filtered in the kernel; once)').argParser(once('--port', parsePort)),
    new Option('--host <address>', 'only connections whose local or remote address is this (IPv4 or IPv6; once)').argParser(once('--host', parseHost)),
    new Option('--lib <path>', 'also probe this library or statically linked program (repeatable)').argParser(collect).default([]),
    new Option('--max-bytes <size>', 'bytes copied per call at most; the rest is counted as truncated').argParser(parseMaxBytes).default(EVENT_LAYOUT.constants.DEFAULT_CALL_BYTES, '1m'),
    ...outputOptions(),
    new Option('--record <file>', 'also write the raw event stream to a file for `tlstap replay`'),
    new Option('--ring-buffer <size>', 'kernel ring buffer size, a power of two, 32k at least').argParser(parseRingBuffer).default(16 * MIB, '16m'),
    new Option('--connections <n>', 'connections the kernel tracks at once (the size of its connection map; `tlstap doctor` shows it)').argParser(parseConnections).default(EVENT_LAYOUT.constants.MAX_CONNS),
    new Option('--btf <file>', 'the kernel\'s BTF (a vmlinux or .btf file) where /sys/kernel/btf/vmlinux is missing; without any BTF, addresses are unknown').argParser(parseReadableFile),
    new Option('--duration <seconds>', 'stop after this many seconds (any length)').argParser(parseSeconds),
    new Option('-v, --verbose', 'list the probed files at start, and print a stats line on stderr every second').default(false),
    new Option('--remote <command>', "capture on another machine through tlstap-agent: a command that runs its last argument as a shell command there, e.g. 'ssh root@host', 'adb shell su -c' (pushes the agent when missing or stale)").argParser(once('--remote', parseRemote)),
    new Option('--agent-path <path>', 'where the agent lives on the --remote machine (default /data/local/tmp/tlstap-agent on Android, else ~/.cache/tlstap/tlstap-agent)').argParser(once('--agent-path', parseAgentPath)),
    new Option('--plan-out <file>', "with --remote: find the targets there and write the capture's plan to this file instead of capturing, for `tlstap-agent --plan FILE --record REC` to record alone on that machine (docs/agent.md)"),
    new Option('--package <name>', 'with --remote on Android: only this app, by its uid from /data/system/packages.list (filtered in the kernel; once)').argParser(once('--package', parsePackage)),
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

/** The output options that must agree with each other (capture and replay). */
export interface OutputChoices {
  format: OutputFormat;
  output?: string;
  pcapng?: string;
  formatGiven?: boolean;
}

/** Refuses output options that would do something other than what they say; returns the options. */
export function checkOutputChoices<T extends OutputChoices>(opts: T): T {
  if (opts.format === 'none' && opts.output !== undefined) {
    throw new CliError(`-f none writes no format, so -o ${opts.output} would stay empty`, 'drop -o, or name a format with -f (text, hex, jsonl, http)');
  }
  if (opts.pcapng === '-' && opts.formatGiven === true && opts.format !== 'none' && opts.output === undefined) {
    throw new CliError(`-w - puts pcapng on stdout, so -f ${opts.format} has nowhere to go`, `add -o FILE for the ${opts.format} output, or drop -f`);
  }
  return opts;
}

/** The files these options write, named by their option (for checkDistinctPaths). */
export function outputPaths(opts: Pick<OutputOptions, 'output' | 'pcapng' | 'har'>): NamedPath[] {
  const paths: NamedPath[] = [];
  if (opts.output !== undefined) paths.push({ what: '-o', path: opts.output });
  if (opts.pcapng !== undefined) paths.push({ what: '-w', path: opts.pcapng });
  if (opts.har !== undefined) paths.push({ what: '--har', path: opts.har });
  return paths;
}

/**
 * Parses a capture's arguments (no `node cli.js` in front) the way the CLI does, without printing or
 * exiting: throws commander's CommanderError or a CliError.
 */
export function parseCaptureArgs(args: readonly string[]): CaptureOptions {
  const command = new Command('tlstap').exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  for (const option of captureOptions()) command.addOption(option);
  command.parse(args, { from: 'user' });
  return checkOutputChoices({ ...command.opts<CaptureOptions>(), formatGiven: command.getOptionValueSource('format') === 'cli' });
}
