// The agent protocol (docs/agent.md): frames, requests and responses between the front end and
// tlstap-agent. agent/protocol.h is the one definition; this mirrors it and a test checks the mirror.
import { crc32 } from '../util/crc32.js';
import { FRAME_HEADER_SIZE, FRAME_MAGIC, MAX_FRAME_PAYLOAD, frameCrc } from '../record/format.js';

/** Version of the agent protocol this front end speaks (TLSTAP_AGENT_PROTOCOL). */
export const AGENT_PROTOCOL = 1;

/** Largest request payload the agent accepts. */
export const MAX_REQUEST = 1 << 20;
/** Largest payload of any frame: the record format's limit. */
export const MAX_PAYLOAD = MAX_FRAME_PAYLOAD;
/** Most bytes one PREAD or READFILE answers with. */
export const MAX_READ = 4 << 20;
/** Bytes of a STAT result. */
export const STAT_SIZE = 56;
/** STAT flag: do not follow a final symlink. */
export const STAT_NOFOLLOW = 1;
/** READFILE flag: the file holds more than was asked for. */
export const READFILE_TRUNCATED = 1;

/** Frame markers: requests, responses, record batches (the --record frame) and log lines. */
export const MARK = {
  request: 'TREQ',
  response: 'TRSP',
  records: FRAME_MAGIC.toString('latin1'),
  log: 'TLOG',
  /** In a plan file only: the recording's JSON header template. */
  planHeader: 'THDR',
  /** In a plan file only: a file that must be unchanged. */
  planCheck: 'TCHK',
} as const;

/** The first 8 bytes of a plan file (docs/agent.md, "Recording on the device alone"). */
export const PLAN_MAGIC = 'TLSTAPPL';
/** Version of the plan format. */
export const PLAN_VERSION = 1;
/** Placeholders in a plan's header that the agent fills when it starts recording. */
export const PLAN_CREATED_AT = '@CREATED_AT@';
export const PLAN_MONOTONIC_TO_WALL = '@MONOTONIC_TO_WALL_NS@';

/** What a frame is, by its marker. */
export type FrameKind = keyof typeof MARK;

/** Request operations (enum tlstap_agent_op). */
export const OP = {
  HELLO: 1,
  STAT: 2,
  PREAD: 3,
  READDIR: 4,
  READLINK: 5,
  READFILE: 6,
  CLOCK: 7,
  SET_GLOBAL: 16,
  SET_MAP_MAX: 17,
  USE_MULTI: 18,
  LOAD: 19,
  ATTACH_UPROBE: 20,
  ATTACH_MULTI: 21,
  ATTACH_TP: 22,
  START: 23,
  PAUSE: 24,
  COUNTERS: 25,
  DETACH: 26,
  STOP: 27,
  SET_AUTOLOAD: 28,
  UPDATE_ELEM: 29,
  BYE: 31,
} as const;

/** One decoded frame: its kind, its u32 field (request id or record count) and payload. */
export interface Frame {
  kind: FrameKind;
  field: number;
  payload: Buffer;
}

/** A byte stream that is not the agent protocol: bad marker, length or CRC, or cut short. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** Offset in the stream of the frame that is wrong. */
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

const KIND_BY_MARK = new Map<string, FrameKind>(Object.entries(MARK).map(([k, v]) => [v, k as FrameKind]));

/** The bytes of one frame (16-byte header, then the payload). */
export function encodeFrame(kind: FrameKind, field: number, payload: Uint8Array): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  head.write(MARK[kind], 0, 'latin1');
  head.writeUInt32LE(payload.length, 4);
  head.writeUInt32LE(field >>> 0, 8);
  head.writeUInt32LE(frameCrc(head, payload), 12);
  return Buffer.concat([head, payload]);
}

/**
 * Splits a byte stream into frames as bytes arrive. Every frame is checked (marker, length bound,
 * CRC) before it is returned; the first bad one throws a ProtocolError and the decoder stays failed.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private consumed = 0;
  private failure: ProtocolError | undefined;

  constructor(private readonly maxPayload: number = MAX_PAYLOAD) {}

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.buffered;
  }

  /** Adds bytes; returns every frame now complete, in order. */
  push(bytes: Buffer): Frame[] {
    if (this.failure) throw this.failure;
    if (bytes.length > 0) {
      this.chunks.push(bytes);
      this.buffered += bytes.length;
    }
    const frames: Frame[] = [];
    while (this.buffered >= FRAME_HEADER_SIZE) {
      const head = this.peek(FRAME_HEADER_SIZE);
      const kind = KIND_BY_MARK.get(head.toString('latin1', 0, 4));
      const length = head.readUInt32LE(4);
      if (kind === undefined) this.fail(`bad frame marker ${JSON.stringify(head.toString('latin1', 0, 4))}`);
      if (length > this.maxPayload) this.fail(`frame payload of ${length} bytes is over the ${this.maxPayload}-byte limit`);
      if (this.buffered < FRAME_HEADER_SIZE + length) break;
      const whole = this.take(FRAME_HEADER_SIZE + length);
      const payload = whole.subarray(FRAME_HEADER_SIZE);
      if (frameCrc(whole, payload) !== whole.readUInt32LE(12)) this.fail(`frame CRC mismatch (${kind} frame, ${length} bytes)`);
      frames.push({ kind, field: whole.readUInt32LE(8), payload });
      this.consumed += whole.length;
    }
    return frames;
  }

  /** Throws a ProtocolError if the stream ended inside a frame. */
  end(): void {
    if (this.failure) throw this.failure;
    if (this.buffered > 0) this.fail(`the stream ended inside a frame (${this.buffered} bytes of it arrived)`);
  }

  private fail(message: string): never {
    this.failure = new ProtocolError(`${message} at byte ${this.consumed} of the agent stream`, this.consumed);
    throw this.failure;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

/** Builds a request's arguments in the protocol's field order (all little-endian). */
export class Args {
  private parts: Buffer[] = [];

  /** Appends a u8. */
  u8(v: number): this {
    this.parts.push(Buffer.from([v & 0xff]));
    return this;
  }

  /** Appends a u16. */
  u16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(v);
    this.parts.push(b);
    return this;
  }

  /** Appends a u32 (an i32 is written as its two's complement). */
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }

  /** Appends a u64. */
  u64(v: bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(v);
    this.parts.push(b);
    return this;
  }

  /** Appends a string with a u16 length in front. */
  str16(s: string): this {
    const bytes = stringBytes(s);
    return this.u16(bytes.length).bytes(bytes);
  }

  /** Appends raw bytes; a string that ends the arguments is appended this way, without a length. */
  bytes(b: Uint8Array | string): this {
    this.parts.push(typeof b === 'string' ? stringBytes(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    return this;
  }

  /** The arguments' bytes. */
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function stringBytes(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.includes(0)) throw new TypeError(`a string sent to the agent holds a NUL byte: ${JSON.stringify(s)}`);
  if (bytes.length > 0xffff) throw new RangeError(`a string sent to the agent is ${bytes.length} bytes; the limit is 65535`);
  return bytes;
}

/** The payload of a request: op, then its arguments. */
export function encodeRequest(op: number, args: Uint8Array = Buffer.alloc(0)): Buffer {
  const payload = Buffer.allocUnsafe(4 + args.length);
  payload.writeUInt32LE(op, 0);
  payload.set(args, 4);
  if (payload.length > MAX_REQUEST) throw new RangeError(`request of ${payload.length} bytes is over the agent's ${MAX_REQUEST}-byte limit`);
  return payload;
}

/** A decoded response: status 0 and the result, or a negative errno and the agent's message. */
export type Response = { status: 0; result: Buffer } | { status: number; message: string };

/** Splits a response payload into its status and result or message. */
export function decodeResponse(payload: Buffer): Response {
  if (payload.length < 4) throw new ProtocolError(`a response of ${payload.length} bytes has no status`, 0);
  const status = payload.readInt32LE(0);
  const rest = payload.subarray(4);
  return status === 0 ? { status: 0, result: rest } : { status, message: rest.toString('utf8') };
}

/** What STAT answers. */
export interface RemoteStat {
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  rdev: bigint;
}

const S_IFMT = 0o170000;

/** Whether a mode is a regular file, a directory or a symlink. */
export function fileType(mode: number): 'file' | 'dir' | 'symlink' | 'other' {
  const t = mode & S_IFMT;
  return t === 0o100000 ? 'file' : t === 0o040000 ? 'dir' : t === 0o120000 ? 'symlink' : 'other';
}

/** Decodes a STAT result. */
export function decodeStat(b: Buffer): RemoteStat {
  if (b.length !== STAT_SIZE) throw new ProtocolError(`a STAT result is ${b.length} bytes, not ${STAT_SIZE}`, 0);
  return {
    mode: b.readUInt32LE(0),
    uid: b.readUInt32LE(4),
    gid: b.readUInt32LE(8),
    nlink: b.readUInt32LE(12),
    dev: b.readBigUInt64LE(16),
    ino: b.readBigUInt64LE(24),
    size: b.readBigUInt64LE(32),
    mtimeNs: b.readBigInt64LE(40),
    rdev: b.readBigUInt64LE(48),
  };
}

/** One READDIR entry: its name and d_type (DT_DIR 4, DT_REG 8, DT_LNK 10, 0 unknown). */
export interface RemoteDirent {
  name: string;
  type: number;
}

/** Decodes a READDIR result. */
export function decodeDirents(b: Buffer): RemoteDirent[] {
  const out: RemoteDirent[] = [];
  let off = 0;
  while (off < b.length) {
    if (b.length - off < 4) throw new ProtocolError(`a READDIR entry at byte ${off} is cut short`, off);
    const type = b.readUInt8(off);
    const n = b.readUInt16LE(off + 2);
    if (b.length - off - 4 < n) throw new ProtocolError(`a READDIR name at byte ${off} runs past the result`, off);
    out.push({ name: b.toString('utf8', off + 4, off + 4 + n), type });
    off += 4 + n;
  }
  return out;
}

/** What HELLO answers: the agent's version, protocol, machine, and the checksum of its own file. */
export interface AgentHello {
  agent: string;
  protocol: number;
  pid: number;
  selfCrc32: number;
  selfSize: number;
  /** Whether this agent has the capture core (false: files and /proc only). */
  core: boolean;
  machine: string;
  kernel: string;
  hostname: string;
  root: string;
}

/** Decodes a HELLO result. */
export function decodeHello(b: Buffer): AgentHello {
  if (b.length < 4) throw new ProtocolError('a HELLO result has no protocol version', 0);
  const protocol = b.readUInt32LE(0);
  let info: unknown;
  try {
    info = JSON.parse(b.toString('utf8', 4));
  } catch (err) {
    throw new ProtocolError(`a HELLO result is not JSON: ${(err as Error).message}`, 4);
  }
  const h = info as AgentHello;
  if (typeof h !== 'object' || h === null || typeof h.agent !== 'string' || h.protocol !== protocol) {
    throw new ProtocolError('a HELLO result lacks the agent version or disagrees on the protocol', 4);
  }
  return h;
}

/** CRC32 (zlib) of a file's bytes: what HELLO's selfCrc32 is compared with. */
export function fileCrc32(bytes: Uint8Array): number {
  return crc32(bytes);
}

/** Decodes a CLOCK result: the agent's CLOCK_MONOTONIC and CLOCK_REALTIME, in ns. */
export function decodeClock(b: Buffer): { monotonicNs: bigint; realtimeNs: bigint } {
  if (b.length !== 16) throw new ProtocolError(`a CLOCK result is ${b.length} bytes, not 16`, 0);
  return { monotonicNs: b.readBigUInt64LE(0), realtimeNs: b.readBigUInt64LE(8) };
}
