import type { ConnectionInfo } from './types.js';

/** Text form of an IPv4 address held in the first 4 bytes of `bytes` (network order). */
export function formatIpv4(bytes: Uint8Array, start = 0): string {
  return `${bytes[start]}.${bytes[start + 1]}.${bytes[start + 2]}.${bytes[start + 3]}`;
}

/** RFC 5952 text form of a 16-byte IPv6 address (IPv4-mapped ones as ::ffff:a.b.c.d). */
export function formatIpv6(bytes: Uint8Array, start = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((bytes[start + 2 * i]! << 8) | bytes[start + 2 * i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes, start + 12)}`;
  }
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses an IPv4 or IPv6 address given by a user (--host) into its family and bytes. */
export function parseIpAddress(text: string): { family: 'ipv4' | 'ipv6'; bytes: Buffer } | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    if (parts.some((p) => p > 255)) return undefined;
    return { family: 'ipv4', bytes: Buffer.from(parts) };
  }
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!bare.includes(':')) return undefined;
  let head = bare;
  let tail = '';
  const mapped = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(bare);
  const extra: number[] = [];
  if (mapped) {
    const v4bytes = parseIpAddress(mapped[2]!);
    if (!v4bytes) return undefined;
    extra.push((v4bytes.bytes[0]! << 8) | v4bytes.bytes[1]!, (v4bytes.bytes[2]! << 8) | v4bytes.bytes[3]!);
    head = mapped[1]!.endsWith('::') ? mapped[1]! : mapped[1]!.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0]!);
  tail = halves.length === 2 ? halves[1]! : '';
  const right = halves.length === 2 ? parse(tail) : [];
  if (!left || !right) return undefined;
  const known = left.length + right.length + extra.length;
  if ((halves.length === 1 && known !== 8) || known > 8) return undefined;
  const groups = [...left, ...Array<number>(8 - known).fill(0), ...right, ...extra];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(g, 2 * i));
  return { family: 'ipv6', bytes };
}

/** `ip:port`, with IPv6 addresses in brackets. */
export function formatEndpoint(ep: { ip: string; port: number }): string {
  return ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/** One line about a connection: `conn=7 fd=5 127.0.0.1:40000 → 127.0.0.1:8443`, or why addresses are unknown. */
export function describeConnection(conn: ConnectionInfo): string {
  const fd = conn.fd >= 0 ? ` fd=${conn.fd}` : '';
  if (conn.local && conn.remote) return `conn=${conn.id}${fd} ${formatEndpoint(conn.local)} → ${formatEndpoint(conn.remote)}`;
  return `conn=${conn.id}${fd} (addresses unknown: ${conn.unknownReason ?? 'not seen'})`;
}

/** The `conn` object of JSON output, as a JSON string. */
export function connectionJson(conn: ConnectionInfo): string {
  const endpoint = (ep: { ip: string; port: number } | undefined) => (ep ? `{"ip":"${ep.ip}","port":${ep.port}}` : 'null');
  const unknown = conn.local && conn.remote ? '' : `,"unknown":${JSON.stringify(conn.unknownReason ?? 'not seen')}`;
  return `{"id":${conn.id},"fd":${conn.fd},"local":${endpoint(conn.local)},"remote":${endpoint(conn.remote)}${unknown}}`;
}

/** An address given by a user (--host), as parseIpAddress returns it. */
export type IpAddress = NonNullable<ReturnType<typeof parseIpAddress>>;

/** Whether `ip` (as formatted in records) is `host`; IPv4 also matches its ::ffff: form on a dual-stack socket. */
function ipIs(ip: string, host: IpAddress): boolean {
  const parsed = parseIpAddress(ip);
  if (!parsed) return false;
  if (parsed.family === host.family) return parsed.bytes.equals(host.bytes);
  return host.family === 'ipv4' && ip.startsWith('::ffff:') && parsed.bytes.subarray(12).equals(host.bytes);
}

/**
 * The --port/--host test in user space, the same one the kernel makes (bpf/tlstap.bpf.c
 * address_matches), for connections whose addresses became known only after their first calls
 * (a memory BIO); undefined when neither is set. A connection without addresses does not match.
 */
export function addressFilter(port?: number, host?: IpAddress): ((conn: ConnectionInfo) => boolean) | undefined {
  if (port === undefined && host === undefined) return undefined;
  return (conn) => {
    const { local, remote } = conn;
    if (!local || !remote) return false;
    if (port !== undefined && local.port !== port && remote.port !== port) return false;
    return host === undefined || ipIs(local.ip, host) || ipIs(remote.ip, host);
  };
}
