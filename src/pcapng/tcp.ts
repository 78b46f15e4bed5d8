// TLS plaintext as TCP/IP packets, so Wireshark's TCP reassembly, Follow Stream and HTTP
// dissectors work on it. Each connection becomes one TCP stream: a synthesized three-way handshake
// at its first call, data segments with per-direction sequence and acknowledgement numbers, and a
// FIN/ACK exchange when it closes (or when the capture ends).
//
// Addresses: the connection's real local/remote endpoints when both are known (the traced
// process's own endpoint is `local`). When they are not, placeholders on loopback:
//   the process's endpoint  127.1.<(pid >> 8) & 255>.<pid & 255>  (pid modulo 65536)
//   the peer                127.2.0.1
//   the server's port       443
//   the client's port       32768 + (connection number mod 28232), i.e. in Linux's ephemeral range
// and every packet of such a connection says `addr=placeholder` in its comment (the SYN says why).
//
// Nothing here reads a clock or a random source: the same calls give the same packets. Initial
// sequence numbers are a hash of the connection number.

import { formatIpv4, formatIpv6, parseIpAddress } from '../events/addresses.js';
import { walkHoles } from '../events/types.js';
import type { ConnectionEvent, ConnectionInfo, Endpoint, TlsCall } from '../events/types.js';
import { putBytes, putU16BE, putU32BE } from '../output/bytes.js';
import { finishChecksum, sum16 } from './checksum.js';

/** TCP flag bits. */
export const TCP_FIN = 0x01;
/** TCP SYN flag. */
export const TCP_SYN = 0x02;
/** TCP PSH flag. */
export const TCP_PSH = 0x08;
/** TCP ACK flag. */
export const TCP_ACK = 0x10;

/** The longest IP packet tlstap writes (the IPv4 total-length and IPv6 payload-length limit). */
export const MAX_IP_PACKET = 65535;
/** Window-scale shift announced in the SYNs, so a long one-way transfer never fills the window. */
const WINDOW_SHIFT = 14;
/** Unacknowledged bytes after which the receiver sends a pure ACK (far below 65535 << 14). */
const ACK_EVERY = 1 << 28;
/** The server port of placeholder addresses. */
export const PLACEHOLDER_SERVER_PORT = 443;

/** An IP address as bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddress {
  family: 4 | 6;
  bytes: Buffer;
}

/** One side of a synthesized connection. */
export interface TcpEndpoint {
  ip: IpAddress;
  port: number;
}

/** Parses IPv4 dotted quads and IPv6 text (with `::` and an embedded IPv4 tail); undefined if invalid. */
export function parseIp(text: string): IpAddress | undefined {
  const parsed = parseIpAddress(text);
  return parsed && { family: parsed.family === 'ipv4' ? 4 : 6, bytes: parsed.bytes };
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; any other address unchanged. */
export function unmapIpv4(ip: IpAddress): IpAddress {
  if (ip.family === 6 && ip.bytes.subarray(0, 10).every((b) => b === 0) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff) {
    return { family: 4, bytes: Buffer.from(ip.bytes.subarray(12)) };
  }
  return ip;
}

/** An IPv4 address as IPv4-mapped IPv6 (for a connection whose other side is IPv6). */
function mapToIpv6(ip: IpAddress): IpAddress {
  if (ip.family === 6) return ip;
  const bytes = Buffer.alloc(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  ip.bytes.copy(bytes, 12);
  return { family: 6, bytes };
}

/** Text form of an address (IPv6 with the longest zero run compressed, RFC 5952). */
export function formatIp(ip: IpAddress): string {
  return ip.family === 4 ? formatIpv4(ip.bytes) : formatIpv6(ip.bytes);
}

/** One synthesized TCP segment, ready to be written as an IP packet. */
export interface Segment {
  /** Wall-clock nanoseconds. */
  tsNs: bigint;
  src: TcpEndpoint;
  dst: TcpEndpoint;
  seq: number;
  ack: number;
  flags: number;
  payload: Buffer;
  /** True when the traced process sent it (epb_flags outbound). */
  outbound: boolean;
  /** IPv4 identification (ignored for IPv6). */
  ipId: number;
  /** The packet comment, UTF-8. */
  comment: Buffer;
}

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const TCP_HEADER = 20;
/** NOP + window scale: the only option, on SYN and SYN/ACK. */
const SYN_OPTIONS = 4;

function tcpHeaderLength(flags: number): number {
  return TCP_HEADER + ((flags & TCP_SYN) !== 0 ? SYN_OPTIONS : 0);
}

/** Payload bytes that fit one segment of the family without passing MAX_IP_PACKET. */
export function maxSegmentPayload(family: 4 | 6): number {
  return MAX_IP_PACKET - (family === 4 ? IPV4_HEADER : IPV6_HEADER) - TCP_HEADER;
}

/** Bytes of the IP packet that carries `seg`. */
export function packetLength(seg: Segment): number {
  return (seg.src.ip.family === 4 ? IPV4_HEADER : IPV6_HEADER) + tcpHeaderLength(seg.flags) + seg.payload.length;
}

/**
 * Writes the IP packet of `seg` at `off` (packetLength(seg) bytes), checksums included;
 * `payloadSum` is what sum16 gives for its payload (a PayloadSummer's is quicker).
 */
export function writePacket(buf: Buffer, off: number, seg: Segment, payloadSum = sum16(seg.payload, 0, seg.payload.length)): void {
  const tcpLen = tcpHeaderLength(seg.flags) + seg.payload.length;
  let t: number;
  let pseudo: number;
  if (seg.src.ip.family === 4) {
    buf[off] = 0x45; // version 4, header length 5 words
    buf[off + 1] = 0;
    putU16BE(buf, off + 2, IPV4_HEADER + tcpLen);
    putU16BE(buf, off + 4, seg.ipId & 0xffff);
    putU16BE(buf, off + 6, 0x4000); // don't fragment
    buf[off + 8] = 64; // TTL
    buf[off + 9] = 6; // TCP
    putU16BE(buf, off + 10, 0);
    putBytes(buf, off + 12, seg.src.ip.bytes);
    putBytes(buf, off + 16, seg.dst.ip.bytes);
    putU16BE(buf, off + 10, finishChecksum(sum16(buf, off, off + IPV4_HEADER)));
    // Pseudo-header: addresses, zero, protocol, TCP length.
    pseudo = sum16(buf, off + 12, off + 20, 6 + tcpLen);
    t = off + IPV4_HEADER;
  } else {
    putU32BE(buf, off, 0x60000000); // version 6, no traffic class or flow label
    putU16BE(buf, off + 4, tcpLen);
    buf[off + 6] = 6; // next header: TCP
    buf[off + 7] = 64; // hop limit
    putBytes(buf, off + 8, seg.src.ip.bytes);
    putBytes(buf, off + 24, seg.dst.ip.bytes);
    // Pseudo-header: addresses, upper-layer length (32 bits), zeros, next header.
    pseudo = sum16(buf, off + 8, off + 40, 6 + (tcpLen >>> 16) + (tcpLen & 0xffff));
    t = off + IPV6_HEADER;
  }
  const hdr = tcpHeaderLength(seg.flags);
  putU16BE(buf, t, seg.src.port);
  putU16BE(buf, t + 2, seg.dst.port);
  putU32BE(buf, t + 4, seg.seq >>> 0);
  putU32BE(buf, t + 8, (seg.flags & TCP_ACK) !== 0 ? seg.ack >>> 0 : 0);
  buf[t + 12] = (hdr / 4) << 4;
  buf[t + 13] = seg.flags;
  putU16BE(buf, t + 14, 0xffff); // window (scaled by 2^14 after the handshake)
  putU32BE(buf, t + 16, 0); // checksum, urgent pointer
  if (hdr > TCP_HEADER) {
    buf[t + 20] = 1; // NOP
    buf[t + 21] = 3; // window scale
    buf[t + 22] = 3;
    buf[t + 23] = WINDOW_SHIFT;
  }
  putBytes(buf, t + hdr, seg.payload);
  // The header is an even number of bytes: the payload's words line up with the segment's.
  putU16BE(buf, t + 16, finishChecksum(sum16(buf, t, t + hdr, pseudo + payloadSum)));
}

/** A 32-bit integer hash (the murmur3 finalizer): initial sequence numbers from connection numbers. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Application protocol seen on a connection, for Wireshark's decode-as. */
export type StreamProtocol = 'http' | 'http2';

/** A server port and the protocol its streams carry. */
export interface DecodeAs {
  port: number;
  protocol: StreamProtocol;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const HTTP1_REQUEST = /^[A-Z][A-Z-]{0,19} \S+ HTTP\/1\.[01]\r?\n/;

/** The protocol a client's first bytes announce: the HTTP/2 preface or an HTTP/1 request line. */
export function detectProtocol(firstClientBytes: Buffer): StreamProtocol | undefined {
  if (firstClientBytes.length >= H2_PREFACE.length && firstClientBytes.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) {
    return 'http2';
  }
  const head = firstClientBytes.toString('latin1', 0, Math.min(firstClientBytes.length, 2048));
  return HTTP1_REQUEST.test(head) ? 'http' : undefined;
}

/** Per-direction state: the next sequence number and what the other side last acknowledged. */
interface Side {
  ep: TcpEndpoint;
  next: number;
  acked: number;
  ipId: number;
  /** Bytes skipped (not captured) since this side's last segment, for the next comment. */
  gap: number;
  /** The comment of this side's latest call that lost nothing. */
  comment?: CallComment;
}

/** A data segment's comment and the fields of the call it was made for. */
interface CallComment {
  pid: number;
  tid: number;
  uid: number;
  comm: string;
  func: string;
  text: string;
  bytes: Buffer;
}

interface Flow {
  key: string;
  /** The connection object its calls carry, once one has. */
  conn?: ConnectionInfo;
  /** The connection number shown as conn=N (the tracker's id, or our own count). */
  num: number;
  hasId: boolean;
  ssl: bigint;
  pid: number;
  comm: string;
  client: Side;
  server: Side;
  processIsClient: boolean;
  /** `addr=placeholder` when the addresses are made up, else ''. */
  addrTag: string;
  /** Why the addresses are placeholders (on the SYN's comment). */
  placeholderReason?: string;
  protocolChecked: boolean;
}

/** Where synthesized segments go, in order. */
export type SegmentSink = (seg: Segment) => void;

/** Ports at or above this that are not the other side's are taken for the client's (Linux's range). */
const EPHEMERAL_LOW = 32768;
const EPHEMERAL_HIGH = 60999;

/**
 * Which side of a known connection is the server, judged by the ports: a port below 1024 against
 * one above, else a port outside the ephemeral range against one inside. Undefined when the ports
 * do not say.
 */
export function processIsServerByPorts(local: number, remote: number): boolean | undefined {
  if (local === remote) return undefined;
  if (local < 1024 !== remote < 1024) return local < 1024;
  const eph = (p: number): boolean => p >= EPHEMERAL_LOW && p <= EPHEMERAL_HIGH;
  if (eph(local) !== eph(remote)) return eph(remote);
  return undefined;
}

/** Turns calls and connection events into TCP segments (see the top of this file). */
export class TcpSynthesizer {
  private readonly flows = new Map<string, Flow>();
  /** The same flows by their calls' connection object, while open. */
  private readonly flowsByConn = new WeakMap<ConnectionInfo, Flow>();
  private readonly pendingOpen = new Map<string, ConnectionEvent>();
  private readonly protocols = new Map<number, Set<StreamProtocol>>();
  private nextOwnNum = 1;
  private lastTsNs: bigint | undefined;

  constructor(
    private readonly emit: SegmentSink,
    private readonly wallClockNs: (monotonicNs: bigint) => bigint,
  ) {}

  /** Connections seen so far whose server port carries HTTP, for decode-as options. */
  get decodeAs(): DecodeAs[] {
    const out: DecodeAs[] = [];
    for (const [port, set] of [...this.protocols].sort((a, b) => a[0] - b[0])) {
      // A port with both: Wireshark's HTTP dissector hands a stream that opens with the HTTP/2
      // preface to the HTTP/2 dissector, but not the other way round.
      out.push({ port, protocol: set.has('http') ? 'http' : 'http2' });
    }
    return out;
  }

  /** Open events are remembered (addresses); close events end the stream with FIN/ACK. */
  connection(event: ConnectionEvent): void {
    const key = `c${event.conn.id}`;
    const ts = this.wallClockNs(event.tsNs);
    this.noteTs(ts);
    if (event.type === 'open') {
      this.pendingOpen.set(key, event);
      return;
    }
    this.pendingOpen.delete(key);
    const flow = this.flows.get(key);
    if (flow === undefined) return;
    this.close(flow, ts, event.reason ?? 'connection closed');
  }

  /** One call's plaintext as data segments from its sender (the handshake first, if new). */
  call(call: TlsCall): void {
    const ts = this.wallClockNs(call.tsNs);
    this.noteTs(ts);
    const flow = this.flowOf(call, ts);
    const fromProcess = call.dir === 'write';
    const fromClient = fromProcess === flow.processIsClient;
    const sender = fromClient ? flow.client : flow.server;
    const data = call.data;
    if (fromClient && !flow.protocolChecked && data.length > 0) {
      flow.protocolChecked = true;
      const protocol = detectProtocol(data);
      if (protocol !== undefined) {
        let set = this.protocols.get(flow.server.ep.port);
        if (set === undefined) this.protocols.set(flow.server.ep.port, (set = new Set()));
        set.add(protocol);
      }
    }
    // Lost chunks are skipped in sequence space where they were; truncated bytes are at the end.
    if (call.holes === undefined) {
      if (data.length > 0) this.dataSegments(flow, sender, call, fromClient, fromProcess, ts, data, true);
      this.skip(sender, call.lost + call.truncated);
    } else {
      walkHoles(
        call,
        (piece, end) => this.dataSegments(flow, sender, call, fromClient, fromProcess, ts, piece, end),
        (length) => this.skip(sender, length),
      );
      this.skip(sender, call.truncated);
    }
    if (((sender.next - sender.acked) >>> 0) >= ACK_EVERY) {
      this.segment(flow, !fromClient, ts, TCP_ACK, EMPTY, !fromProcess, this.note(flow, 'synthesized ACK'));
    }
  }

  /** `data` as segments of at most one MSS from `sender`; the last one pushes when `push`. */
  private dataSegments(flow: Flow, sender: Side, call: TlsCall, fromClient: boolean, fromProcess: boolean, ts: bigint, data: Buffer, push: boolean): void {
    const { text, bytes: comment } = this.callComment(flow, sender, call);
    const max = maxSegmentPayload(sender.ep.ip.family);
    for (let off = 0; off < data.length; off += max) {
      const end = Math.min(data.length, off + max);
      let segComment = comment;
      if (sender.gap > 0) {
        segComment = Buffer.from(`${text} gap=${sender.gap} (bytes before this segment were not captured)`, 'utf8');
        sender.gap = 0;
      }
      // A call that fits one segment goes as it is, without a view made for it.
      const payload = off === 0 && end === data.length ? data : data.subarray(off, end);
      this.segment(flow, fromClient, ts, push && end === data.length ? TCP_PSH | TCP_ACK : TCP_ACK, payload, fromProcess, segComment);
    }
  }

  /** Skips `n` bytes that were not captured, so Wireshark shows a gap, not misaligned data. */
  private skip(sender: Side, n: number): void {
    if (n <= 0) return;
    sender.next = (sender.next + n) >>> 0;
    sender.gap += n;
  }

  /** The flow of a call's connection, opened (handshake segments) when it is new. */
  private flowOf(call: TlsCall, ts: bigint): Flow {
    const conn = call.conn;
    // By the connection object first: no key string to make for each call.
    let flow = conn !== undefined ? this.flowsByConn.get(conn) : undefined;
    if (flow !== undefined) return flow;
    const key = conn !== undefined ? `c${conn.id}` : `${call.pid}:${call.ssl.toString(16)}`;
    flow = this.flows.get(key);
    if (flow === undefined) {
      flow = this.open(key, call, ts);
      this.flows.set(key, flow);
    }
    if (conn !== undefined) {
      flow.conn = conn;
      this.flowsByConn.set(conn, flow);
    }
    return flow;
  }

  /**
   * The comment on a call's data segments. Those of calls that lost nothing are alike for every
   * call of a thread: each side keeps its latest and uses it again while they stay alike.
   */
  private callComment(flow: Flow, sender: Side, call: TlsCall): CallComment {
    const plain = call.truncated === 0 && call.lost === 0 && !call.callsMissedBefore;
    const last = sender.comment;
    if (plain && last !== undefined && last.pid === call.pid && last.tid === call.tid && last.uid === call.uid && last.comm === call.comm && last.func === call.func) {
      return last;
    }
    let text =
      `pid=${call.pid} tid=${call.tid} comm=${call.comm} uid=${call.uid} func=${call.func} ` +
      (flow.hasId ? `conn=${flow.num}` : `ssl=0x${flow.ssl.toString(16)}`);
    if (call.truncated > 0) text += ` truncated=${call.truncated}`;
    if (call.lost > 0) text += ` lost=${call.lost}`;
    // Whole calls dropped before this one: their size is unknown, so no sequence gap can show them.
    if (call.callsMissedBefore) text += ` calls_missed_before=${call.callsMissedBefore} (their bytes are not in this stream)`;
    if (flow.addrTag !== '') text += ` ${flow.addrTag}`;
    const comment: CallComment = { pid: call.pid, tid: call.tid, uid: call.uid, comm: call.comm, func: call.func, text, bytes: Buffer.from(text, 'utf8') };
    if (plain) sender.comment = comment;
    return comment;
  }

  /** Closes every connection still open (end of capture), stamped with the latest time seen. */
  finish(reason = 'end of capture'): void {
    const ts = this.lastTsNs ?? 0n;
    for (const flow of [...this.flows.values()]) this.close(flow, ts, reason);
    this.pendingOpen.clear();
  }

  private noteTs(ts: bigint): void {
    if (this.lastTsNs === undefined || ts > this.lastTsNs) this.lastTsNs = ts;
  }

  private note(flow: Flow, what: string): Buffer {
    const id = flow.hasId ? `conn=${flow.num}` : `ssl=0x${flow.ssl.toString(16)}`;
    return Buffer.from(`pid=${flow.pid} comm=${flow.comm} ${id} ${what}${flow.addrTag !== '' ? ` ${flow.addrTag}` : ''}`, 'utf8');
  }

  private open(key: string, call: TlsCall, ts: bigint): Flow {
    const conn: ConnectionInfo | undefined = call.conn ?? this.pendingOpen.get(key)?.conn;
    this.pendingOpen.delete(key);
    const hasId = conn !== undefined;
    const num = hasId ? conn.id : this.nextOwnNum++;
    const firstIsWrite = call.dir === 'write';
    let processIsClient = firstIsWrite;
    let local: TcpEndpoint | undefined;
    let remote: TcpEndpoint | undefined;
    let reason: string | undefined;
    if (conn?.local !== undefined && conn.remote !== undefined) {
      const l = endpointOf(conn.local);
      const r = endpointOf(conn.remote);
      if (l === undefined || r === undefined) {
        reason = `unparseable address ${l === undefined ? conn.local.ip : conn.remote.ip}`;
      } else {
        if (l.ip.family !== r.ip.family) {
          l.ip = mapToIpv6(l.ip);
          r.ip = mapToIpv6(r.ip);
        }
        local = l;
        remote = r;
        const server = processIsServerByPorts(l.port, r.port);
        if (server !== undefined) processIsClient = !server;
      }
    } else {
      reason = conn?.unknownReason ?? (conn === undefined ? 'no connection information' : 'addresses not known');
    }
    let placeholder: string | undefined;
    if (local === undefined || remote === undefined) {
      const own: IpAddress = { family: 4, bytes: Buffer.from([127, 1, (call.pid >>> 8) & 255, call.pid & 255]) };
      const peer: IpAddress = { family: 4, bytes: Buffer.from([127, 2, 0, 1]) };
      const clientPort = EPHEMERAL_LOW + (num % (EPHEMERAL_HIGH - EPHEMERAL_LOW + 1));
      local = { ip: own, port: processIsClient ? clientPort : PLACEHOLDER_SERVER_PORT };
      remote = { ip: peer, port: processIsClient ? PLACEHOLDER_SERVER_PORT : clientPort };
      placeholder = reason ?? 'addresses not known';
    }
    const clientEp = processIsClient ? local : remote;
    const serverEp = processIsClient ? remote : local;
    const isnClient = mix32(num * 2 + 1);
    const isnServer = mix32(num * 2 + 2);
    const flow: Flow = {
      key,
      num,
      hasId,
      ssl: call.ssl,
      pid: call.pid,
      comm: call.comm,
      client: { ep: clientEp, next: isnClient, acked: isnClient, ipId: isnClient & 0xffff, gap: 0 },
      server: { ep: serverEp, next: isnServer, acked: isnServer, ipId: isnServer & 0xffff, gap: 0 },
      processIsClient,
      addrTag: placeholder !== undefined ? 'addr=placeholder' : '',
      placeholderReason: placeholder,
      protocolChecked: false,
    };
    const why =
      placeholder !== undefined
        ? `; addresses unknown (${placeholder}): placeholders ${formatEp(clientEp)} -> ${formatEp(serverEp)}`
        : '';
    const role = processIsClient ? 'the process is the client' : 'the process is the server';
    this.segment(flow, true, ts, TCP_SYN, EMPTY, processIsClient, this.note(flow, `synthesized SYN: first sighting of the connection, ${role}${why}`));
    this.segment(flow, false, ts, TCP_SYN | TCP_ACK, EMPTY, !processIsClient, this.note(flow, 'synthesized SYN/ACK'));
    this.segment(flow, true, ts, TCP_ACK, EMPTY, processIsClient, this.note(flow, 'synthesized ACK'));
    return flow;
  }

  private close(flow: Flow, ts: bigint, reason: string): void {
    this.flows.delete(flow.key);
    if (flow.conn !== undefined) this.flowsByConn.delete(flow.conn);
    const fromClient = flow.processIsClient; // the process's side closes first
    const note = this.note(flow, `synthesized close: ${reason}`);
    this.segment(flow, fromClient, ts, TCP_FIN | TCP_ACK, EMPTY, true, note);
    this.segment(flow, !fromClient, ts, TCP_FIN | TCP_ACK, EMPTY, false, note);
    this.segment(flow, fromClient, ts, TCP_ACK, EMPTY, true, note);
  }

  /** Emits one segment from the client (or server) side and advances its sequence number. */
  private segment(flow: Flow, fromClient: boolean, tsNs: bigint, flags: number, payload: Buffer, outbound: boolean, comment: Buffer): void {
    const s = fromClient ? flow.client : flow.server;
    const r = fromClient ? flow.server : flow.client;
    const ack = r.next;
    this.emit({ tsNs, src: s.ep, dst: r.ep, seq: s.next, ack, flags, payload, outbound, ipId: s.ipId, comment });
    s.ipId = (s.ipId + 1) & 0xffff;
    let len = payload.length;
    if ((flags & (TCP_SYN | TCP_FIN)) !== 0) len += 1; // SYN and FIN take one sequence number each
    s.next = (s.next + len) >>> 0;
    if ((flags & TCP_ACK) !== 0) r.acked = ack;
  }
}

const EMPTY = Buffer.alloc(0);

function endpointOf(e: Endpoint): TcpEndpoint | undefined {
  const ip = parseIp(e.ip);
  if (ip === undefined || !Number.isInteger(e.port) || e.port < 0 || e.port > 65535) return undefined;
  return { ip: unmapIpv4(ip), port: e.port };
}

function formatEp(e: TcpEndpoint): string {
  return e.ip.family === 4 ? `${formatIp(e.ip)}:${e.port}` : `[${formatIp(e.ip)}]:${e.port}`;
}
