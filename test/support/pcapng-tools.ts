// Helpers for the pcapng tests: call fixtures, an in-memory sink, a minimal block reader written
// from the spec, and tshark/capinfos runners.
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { CaptureContext, ConnectionEvent, ConnectionInfo, TlsCall } from '../../src/events/types.js';
import { createPcapngStreamSink } from '../../src/pcapng/sink.js';
import type { PcapngSink, PcapngSinkOptions } from '../../src/pcapng/sink.js';

/** Wall clock = monotonic + this, so timestamps are fixed and readable (2023-11-14T22:13:20Z). */
export const WALL_OFFSET_NS = 1_700_000_000_000_000_000n;

/** A capture context with a fixed clock offset. */
export const testContext: CaptureContext = { files: ['/usr/lib/libssl.so.3'], wallClockNs: (ns) => ns + WALL_OFFSET_NS };

/** Fixed Section Header texts, so outputs compare byte for byte across machines. */
export const FIXED_HEADER = { userAppl: 'tlstap test', os: 'Linux test', hardware: 'x64' };

/** A TlsCall with defaults (pid 1234, curl, SSL_write/SSL_read by dir). */
export function makeCall(p: Partial<Omit<TlsCall, 'data'>> & { dir: 'read' | 'write'; data: Buffer | string; tsNs: bigint }): TlsCall {
  const data = typeof p.data === 'string' ? Buffer.from(p.data, 'latin1') : p.data;
  const { data: _data, ...rest } = p;
  return {
    pid: 1234,
    tid: 1234,
    uid: 0,
    comm: 'curl',
    func: p.dir === 'write' ? 'SSL_write' : 'SSL_read',
    ssl: 0x5555aaaa0000n,
    fileIndex: 0,
    truncated: 0,
    lost: 0,
    ...rest,
    data,
    totalLen: p.totalLen ?? data.length + (p.truncated ?? 0) + (p.lost ?? 0),
  };
}

/** A ConnectionInfo with real addresses. */
export function connWith(id: number, local: [string, number], remote: [string, number], pid = 1234): ConnectionInfo {
  return { id, pid, ssl: 0x5555aaaa0000n + BigInt(id), fd: 5, local: { ip: local[0], port: local[1] }, remote: { ip: remote[0], port: remote[1] } };
}

/** A ConnectionEvent. */
export function connEvent(type: 'open' | 'close', conn: ConnectionInfo, tsNs: bigint, reason?: string): ConnectionEvent {
  return { type, tsNs, conn, comm: 'curl', reason };
}

/** A sink writing into memory; `bytes()` is everything written so far. */
export function memorySink(opts: PcapngSinkOptions = {}): { sink: PcapngSink; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  const sink = createPcapngStreamSink(out, testContext, { header: FIXED_HEADER, ...opts });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

/** Runs calls and events (in order) through a fresh in-memory sink; returns the file's bytes. */
export async function encodeAll(items: readonly (TlsCall | ConnectionEvent)[], opts: PcapngSinkOptions = {}): Promise<Buffer> {
  const { sink, bytes } = memorySink(opts);
  for (const item of items) {
    if ('type' in item) sink.connection(item);
    else sink.write(item);
  }
  await sink.close();
  return bytes();
}

/** One block as read back: type, offset in the file, body (between the two length fields). */
export interface RawBlock {
  type: number;
  offset: number;
  totalLength: number;
  trailingLength: number;
  body: Buffer;
}

/** Splits a little-endian pcapng file into blocks, checking nothing beyond the framing. */
export function readBlocks(file: Buffer): RawBlock[] {
  const out: RawBlock[] = [];
  let off = 0;
  while (off + 12 <= file.length) {
    const type = file.readUInt32LE(off);
    const totalLength = file.readUInt32LE(off + 4);
    if (off + totalLength > file.length) break;
    out.push({ type, offset: off, totalLength, trailingLength: file.readUInt32LE(off + totalLength - 4), body: file.subarray(off + 8, off + totalLength - 4) });
    off += totalLength;
  }
  return out;
}

/** An option as read back from an options area. */
export interface RawOption {
  code: number;
  length: number;
  value: Buffer;
  /** Bytes after the value up to the next 32-bit boundary. */
  padding: Buffer;
}

/** Reads options up to and including opt_endofopt (code 0); throws on malformed framing. */
export function readOptions(area: Buffer): RawOption[] {
  const out: RawOption[] = [];
  let off = 0;
  for (;;) {
    if (off + 4 > area.length) throw new Error(`options end without opt_endofopt at ${off}`);
    const code = area.readUInt16LE(off);
    const length = area.readUInt16LE(off + 2);
    const padded = (length + 3) & ~3;
    out.push({ code, length, value: area.subarray(off + 4, off + 4 + length), padding: area.subarray(off + 4 + length, off + 4 + padded) });
    off += 4 + padded;
    if (code === 0) {
      if (off !== area.length) throw new Error(`${area.length - off} bytes after opt_endofopt`);
      return out;
    }
  }
}

/** The result of a tool run. */
export interface ToolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion with a generous output buffer. */
export function run(cmd: string, args: readonly string[], input?: Buffer): ToolResult {
  const r = spawnSync(cmd, args, { input, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let haveTools: boolean | undefined;

/** True when tshark and capinfos run; else skips the test (and throws when CI=true: no silent skips). */
export function requireTshark(t: TestContext): boolean {
  haveTools ??= ['tshark', 'capinfos'].every((tool) => spawnSync(tool, ['--version'], { encoding: 'utf8' }).status === 0);
  if (haveTools) return true;
  if (process.env.CI === 'true') throw new Error('tshark and capinfos are needed (Debian package tshark) and CI=true forbids skipping');
  t.skip('tshark/capinfos not installed (apt-get install tshark)');
  return false;
}

/** `tshark -r FILE ... -T fields -e F ...`: one array of field values per packet. */
export function tsharkFields(file: string, fields: readonly string[], extra: readonly string[] = []): string[][] {
  const args = ['-r', file, ...extra, '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', ...fields.flatMap((f) => ['-e', f])];
  const r = run('tshark', args);
  if (r.status !== 0) throw new Error(`tshark ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

/** `tshark -q -z follow,tcp,raw,N`: the stream's bytes per direction (node 0 = the SYN's sender). */
export function followRaw(file: string, stream: number, extra: readonly string[] = []): { client: Buffer; server: Buffer; text: string } {
  const r = run('tshark', ['-r', file, ...extra, '-q', '-z', `follow,tcp,raw,${stream}`]);
  if (r.status !== 0) throw new Error(`tshark follow exited ${r.status}: ${r.stderr}`);
  const client: Buffer[] = [];
  const server: Buffer[] = [];
  const lines = r.stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith('Node 1:'));
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('=====') || line === '') continue;
    if (line.startsWith('\t')) server.push(Buffer.from(line.slice(1), 'hex'));
    else client.push(Buffer.from(line, 'hex'));
  }
  return { client: Buffer.concat(client), server: Buffer.concat(server), text: r.stdout };
}
