// The human formats: a header line per call, then the payload as escaped text or as a hex dump.

import type { CaptureContext, ConnectionEvent, ConnectionInfo, TlsCall } from '../events/types.js';
import { describeConnection } from '../events/addresses.js';
import type { ByteTarget } from './batch.js';
import { escapePayload, previewEnd } from './escape.js';
import { hexdumpInto } from './hexdump.js';

const ESC = '\x1b[';
const RESET = `${ESC}0m`;
const DIM = `${ESC}2m`;
const BOLD = `${ESC}1m`;
const GREEN = `${ESC}32m`;
const CYAN = `${ESC}36m`;
const YELLOW = `${ESC}33m`;
const RED = `${ESC}31m`;

/** Printable ASCII only: a comm that needs no escaping. */
const PLAIN_COMM = /^[\x20-\x7e]*$/;

/** Appends one call, as the stream should get it, to a byte target. */
export interface CallEncoder {
  encode(call: TlsCall, target: ByteTarget): void;
  /** A connection's open or close record, when the format shows them. */
  encodeConnection?(event: ConnectionEvent, target: ByteTarget): void;
}

/** Local wall-clock time as HH:MM:SS.mmm, recomputing the HH:MM:SS part once per second. */
export class LocalClock {
  private second = Number.NaN;
  private prefix = '';

  /** HH:MM:SS.mmm in local time for wall-clock nanoseconds since the epoch. */
  format(wallNs: bigint): string {
    const ms = Number(wallNs / 1_000_000n);
    const second = Math.floor(ms / 1000);
    if (second !== this.second) {
      const d = new Date(second * 1000);
      this.second = second;
      this.prefix = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.`;
    }
    const milli = ms - second * 1000;
    return this.prefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** The header line shared by the text and hex formats, without its newline. */
export class HeaderFormatter {
  private readonly clock = new LocalClock();
  private lastComm = '';
  private lastCommText = '';
  private lastConn: ConnectionInfo | undefined;
  private lastConnText = '';
  private readonly c: {
    time: string;
    comm: string;
    write: string;
    read: string;
    truncated: string;
    lost: string;
    dim: string;
    reset: string;
  };

  constructor(
    private readonly ctx: CaptureContext,
    color: boolean,
  ) {
    this.c = color
      ? { time: DIM, comm: BOLD, write: GREEN, read: CYAN, truncated: YELLOW, lost: RED, dim: DIM, reset: RESET }
      : { time: '', comm: '', write: '', read: '', truncated: '', lost: '', dim: '', reset: '' };
  }

  /** `12:34:56.789 pid=1234 comm=curl tid=1235 SSL_write → 517 bytes [+4096 truncated] ssl=0x…`. */
  format(call: TlsCall): string {
    const c = this.c;
    const time = this.clock.format(this.ctx.wallClockNs(call.tsNs));
    const write = call.dir === 'write';
    let line =
      `${c.time}${time}${c.reset} pid=${call.pid} comm=${c.comm}${this.comm(call.comm)}${c.reset} ` +
      `tid=${call.tid} ${write ? c.write : c.read}${call.func} ${write ? '→' : '←'}${c.reset} ` +
      `${call.totalLen} ${call.totalLen === 1 ? 'byte' : 'bytes'}`;
    if (call.truncated > 0) line += ` ${c.truncated}[+${call.truncated} truncated]${c.reset}`;
    if (call.lost > 0) line += ` ${c.lost}[${call.lost} lost]${c.reset}`;
    return `${line} ${c.dim}${this.connection(call)}${c.reset}`;
  }

  /** The call's connection, described once per connection (calls of one connection share the object). */
  private connection(call: TlsCall): string {
    if (!call.conn) return `ssl=0x${call.ssl.toString(16)}`;
    if (call.conn !== this.lastConn) {
      this.lastConn = call.conn;
      this.lastConnText = describeConnection(call.conn);
    }
    return this.lastConnText;
  }

  /** `12:34:56.789 pid=1234 comm=curl open conn=7 fd=5 127.0.0.1:40000 → 127.0.0.1:8443`. */
  formatConnection(event: ConnectionEvent): string {
    const c = this.c;
    const time = this.clock.format(this.ctx.wallClockNs(event.tsNs));
    const reason = event.reason ? ` (${event.reason})` : '';
    return `${c.time}${time}${c.reset} pid=${event.conn.pid} comm=${c.comm}${this.comm(event.comm)}${c.reset} ${c.dim}${event.type} ${describeConnection(event.conn)}${reason}${c.reset}`;
  }

  /** The comm, escaped when it holds anything but printable ASCII (a process can name itself). */
  private comm(comm: string): string {
    if (comm !== this.lastComm) {
      this.lastComm = comm;
      this.lastCommText = PLAIN_COMM.test(comm) ? comm : escapePayload(Buffer.from(comm, 'utf8'));
    }
    return this.lastCommText;
  }
}

/** A line saying how many captured bytes a preview limit kept off screen, or ''. */
function elidedNote(shown: number, captured: number): string {
  const more = captured - shown;
  return more > 0 ? `[${more} more captured ${more === 1 ? 'byte' : 'bytes'} not shown]\n` : '';
}

/** What text and hex share: the header line of each call, and a line per connection open and close. */
abstract class HeaderedFormat implements CallEncoder {
  protected readonly header: HeaderFormatter;

  constructor(
    ctx: CaptureContext,
    color: boolean,
    protected readonly maxPreviewBytes: number,
  ) {
    this.header = new HeaderFormatter(ctx, color);
  }

  /** One line per connection open and close, between the calls. */
  encodeConnection(event: ConnectionEvent, target: ByteTarget): void {
    target.writeString(`${this.header.formatConnection(event)}\n\n`);
  }

  abstract encode(call: TlsCall, target: ByteTarget): void;
}

/** `text`: the header, then the payload with printable text verbatim and other bytes as `\xNN`. */
export class TextFormat extends HeaderedFormat {
  /** The header line, the escaped payload ending in a newline, and a blank separator line. */
  override encode(call: TlsCall, target: ByteTarget): void {
    const data = call.data;
    const head = this.header.format(call);
    if (data.length === 0) {
      target.writeString(`${head}\n`);
      return;
    }
    const end = previewEnd(data, this.maxPreviewBytes);
    const body = escapePayload(data, 0, end);
    const nl = body.length > 0 && body.charCodeAt(body.length - 1) === 0x0a ? '' : '\n';
    target.writeString(`${head}\n${body}${nl}${elidedNote(end, data.length)}\n`);
  }
}

/** `hex`: the header, then a `hexdump -C` style dump of the captured bytes. */
export class HexFormat extends HeaderedFormat {
  /** The header line, the dump, and a blank separator line. */
  override encode(call: TlsCall, target: ByteTarget): void {
    const data = call.data;
    target.writeString(`${this.header.format(call)}\n`);
    if (data.length === 0) return;
    const end = Math.min(data.length, this.maxPreviewBytes);
    hexdumpInto(target, data, end);
    target.writeString(`${elidedNote(end, data.length)}\n`);
  }
}
