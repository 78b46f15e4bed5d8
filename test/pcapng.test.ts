// The pcapng writer: blocks as the spec lays them out, and files that tshark and capinfos read back
// as real TCP streams with the process on every packet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { TlsCall } from '../src/events/types.js';
import {
  BYTE_ORDER_MAGIC,
  EPB_TYPE,
  IDB_TYPE,
  LINKTYPE_RAW,
  SHB_TYPE,
  encodeInterfaceDescription,
  encodeSectionHeader,
  enhancedPacketLength,
  writeEnhancedPacket,
} from '../src/pcapng/blocks.js';
import { createPcapngSink, createPcapngStreamSink, wiresharkCommand } from '../src/pcapng/sink.js';
import { detectProtocol, formatIp, parseIp, processIsServerByPorts } from '../src/pcapng/tcp.js';
import { PayloadSummer, finishChecksum, sum16 } from '../src/pcapng/checksum.js';
import { forEachByteAtEachPlace, random } from './support/random.js';
import { GrowableBytes } from '../src/output/batch.js';
import { OutputFileError } from '../src/util/private-file.js';
import {
  FIXED_HEADER,
  connEvent,
  connWith,
  encodeAll,
  followRaw,
  makeCall,
  readBlocks,
  readOptions,
  requireTshark,
  run,
  testContext,
  tsharkFields,
} from './support/pcapng-tools.js';

const dir = mkdtempSync(join(tmpdir(), 'tlstap-pcapng-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;

function save(bytes: Buffer): string {
  const path = join(dir, `f${fileNo++}.pcapng`);
  writeFileSync(path, bytes);
  return path;
}

const CHECKSUMS = ['-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE'];

const REQUEST = 'GET /hello?x=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n';
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, world';

/** One HTTP/1.1 exchange in one connection (id 7) with real IPv4 addresses, then its close. */
function http1Exchange(): (TlsCall | ReturnType<typeof connEvent>)[] {
  const conn = connWith(7, ['192.0.2.10', 51000], ['198.51.100.20', 8443]);
  return [
    connEvent('open', conn, 900n),
    makeCall({ dir: 'write', data: REQUEST, tsNs: 1_000n, conn }),
    makeCall({ dir: 'read', data: RESPONSE.slice(0, 40), tsNs: 2_000n, conn }),
    makeCall({ dir: 'read', data: RESPONSE.slice(40), tsNs: 3_000n, conn }),
    connEvent('close', conn, 4_000n, 'SSL_free'),
  ];
}

// ---- blocks against the spec ----

test('Section Header Block: magic, version 1.0, section length -1, options padded and ended', () => {
  const shb = encodeSectionHeader({ userAppl: 'tlstap 0.1.0', os: 'Linux 6.1.0-test', hardware: 'x64' });
  const [b] = readBlocks(shb);
  assert.ok(b);
  assert.equal(b.type, SHB_TYPE);
  assert.equal(b.totalLength, shb.length);
  assert.equal(b.trailingLength, shb.length, 'block total length at both ends');
  assert.equal(shb.length % 4, 0);
  assert.equal(b.body.readUInt32LE(0), BYTE_ORDER_MAGIC);
  assert.deepEqual([b.body.readUInt16LE(4), b.body.readUInt16LE(6)], [1, 0]);
  assert.equal(b.body.readBigInt64LE(8), -1n);
  const opts = readOptions(b.body.subarray(16));
  assert.deepEqual(
    opts.map((o) => [o.code, o.length, o.value.toString()]),
    [
      [2, 3, 'x64'],
      [3, 16, 'Linux 6.1.0-test'],
      [4, 12, 'tlstap 0.1.0'],
      [0, 0, ''],
    ],
  );
  for (const o of opts) {
    assert.equal((o.length + o.padding.length) % 4, 0);
    assert.ok(o.padding.every((x) => x === 0), 'padding is zero');
  }
  assert.equal(opts[0]!.padding.length, 1, '3-byte value padded with 1 byte');
});

test('Interface Description Block: LINKTYPE_RAW, snap length, if_name and if_tsresol = 9', () => {
  const idb = encodeInterfaceDescription({ linkType: LINKTYPE_RAW, snapLen: 65535, name: 'tlstap', tsresol: 9 });
  const [b] = readBlocks(idb);
  assert.ok(b);
  assert.equal(b.type, IDB_TYPE);
  assert.equal(b.trailingLength, idb.length);
  assert.equal(b.body.readUInt16LE(0), 101);
  assert.equal(b.body.readUInt16LE(2), 0, 'reserved');
  assert.equal(b.body.readUInt32LE(4), 65535);
  const opts = readOptions(b.body.subarray(8));
  assert.deepEqual(opts.map((o) => [o.code, o.length]), [
    [2, 6],
    [9, 1],
    [0, 0],
  ]);
  assert.equal(opts[1]!.value[0], 9);
  assert.deepEqual([...opts[1]!.padding], [0, 0, 0]);
});

test('Enhanced Packet Block: ns timestamp halves, lengths, 32-bit padding, epb_flags, comment, end of options', () => {
  for (const packetLen of [0, 1, 2, 3, 4, 5, 61]) {
    for (const comment of ['', 'a', 'pid=1 comm=x']) {
      const target = new GrowableBytes();
      const ts = 0x1234_5678_9abc_def0n;
      const written = writeEnhancedPacket(target, { interfaceId: 0, timestamp: ts, flags: 2, comment: Buffer.from(comment) }, packetLen, (buf, off) =>
        buf.fill(0xab, off, off + packetLen),
      );
      const bytes = target.buf.subarray(0, target.pos);
      assert.equal(written, bytes.length);
      assert.equal(bytes.length, enhancedPacketLength(packetLen, comment.length));
      assert.equal(bytes.length % 4, 0);
      const [b] = readBlocks(bytes);
      assert.ok(b);
      assert.equal(b.type, EPB_TYPE);
      assert.equal(b.totalLength, bytes.length);
      assert.equal(b.trailingLength, bytes.length);
      assert.equal(b.body.readUInt32LE(0), 0, 'interface id');
      assert.equal(b.body.readUInt32LE(4), 0x12345678, 'timestamp high');
      assert.equal(b.body.readUInt32LE(8), 0x9abcdef0, 'timestamp low');
      assert.equal(b.body.readUInt32LE(12), packetLen, 'captured length');
      assert.equal(b.body.readUInt32LE(16), packetLen, 'original length');
      const padded = (packetLen + 3) & ~3;
      assert.ok(b.body.subarray(20, 20 + packetLen).every((x) => x === 0xab));
      assert.ok(b.body.subarray(20 + packetLen, 20 + padded).every((x) => x === 0), 'packet padding is zero');
      const opts = readOptions(b.body.subarray(20 + padded));
      const expected: [number, number][] = [[2, 4]];
      if (comment !== '') expected.push([1, comment.length]);
      expected.push([0, 0]);
      assert.deepEqual(opts.map((o) => [o.code, o.length]), expected);
      assert.equal(opts[0]!.value.readUInt32LE(0), 2);
      if (comment !== '') assert.equal(opts[1]!.value.toString(), comment);
    }
  }
});

test('a whole file is SHB, IDB, then EPBs, framed end to end with no stray bytes', async () => {
  const file = await encodeAll(http1Exchange());
  const blocks = readBlocks(file);
  assert.equal(blocks.reduce((n, b) => n + b.totalLength, 0), file.length);
  assert.deepEqual(blocks.slice(0, 2).map((b) => b.type), [SHB_TYPE, IDB_TYPE]);
  assert.ok(blocks.slice(2).every((b) => b.type === EPB_TYPE && b.trailingLength === b.totalLength));
  // 3 handshake + 1 request + 2 response + 3 close.
  assert.equal(blocks.length - 2, 9);
});

// ---- addresses and helpers ----

test('IP parsing and formatting: IPv4, IPv6 with ::, embedded IPv4, junk', () => {
  assert.equal(formatIp(parseIp('192.0.2.1')!), '192.0.2.1');
  assert.equal(formatIp(parseIp('2001:db8::1')!), '2001:db8::1');
  assert.equal(formatIp(parseIp('::1')!), '::1');
  assert.equal(formatIp(parseIp('::')!), '::');
  assert.equal(formatIp(parseIp('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
  assert.equal(parseIp('::ffff:192.0.2.1')!.bytes.toString('hex'), '00000000000000000000ffffc0000201');
  for (const bad of ['1.2.3', '256.1.1.1', '1::2::3', 'x', '1:2:3:4:5:6:7:8:9', '']) assert.equal(parseIp(bad), undefined, bad);
});

test('the server side is judged by the ports when they tell', () => {
  assert.equal(processIsServerByPorts(443, 51000), true);
  assert.equal(processIsServerByPorts(51000, 443), false);
  assert.equal(processIsServerByPorts(8443, 45000), true);
  assert.equal(processIsServerByPorts(45000, 8443), false);
  assert.equal(processIsServerByPorts(40000, 41000), undefined);
});

test('protocol detection from the client first bytes', () => {
  assert.equal(detectProtocol(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00')), 'http2');
  assert.equal(detectProtocol(Buffer.from(REQUEST)), 'http');
  assert.equal(detectProtocol(Buffer.from('HELO example\r\n')), undefined);
});

test('wiresharkCommand: decode-as for HTTP off its usual ports and for HTTP/2, quoted path, live form', () => {
  assert.equal(wiresharkCommand('out.pcapng', []), 'wireshark -r out.pcapng');
  assert.equal(wiresharkCommand('out.pcapng', [{ port: 80, protocol: 'http' }]), 'wireshark -r out.pcapng');
  assert.equal(
    wiresharkCommand('my capture.pcapng', [
      { port: 8443, protocol: 'http2' },
      { port: 443, protocol: 'http' },
    ], 'tshark'),
    "tshark -d tcp.port==443,http -d tcp.port==8443,http2 -r 'my capture.pcapng'",
  );
  assert.equal(wiresharkCommand('-', [{ port: 443, protocol: 'http' }]), 'wireshark -d tcp.port==443,http -k -i -');
});

// ---- read back by tshark ----

test('HTTP/1.1 in one connection: tshark lists the URI, follows both directions byte for byte', async (t) => {
  if (!requireTshark(t)) return;
  const path = save(await encodeAll(http1Exchange()));
  const uris = tsharkFields(path, ['http.request.uri'], ['-Y', 'http.request']);
  assert.deepEqual(uris, [['/hello?x=1']]);
  const flow = followRaw(path, 0);
  assert.equal(flow.client.toString('latin1'), REQUEST);
  assert.equal(flow.server.toString('latin1'), RESPONSE);
  assert.match(flow.text, /Node 0: 192\.0\.2\.10:51000/);
  assert.match(flow.text, /Node 1: 198\.51\.100\.20:8443/);
  const ascii = run('tshark', ['-r', path, '-q', '-z', 'follow,tcp,ascii,0']);
  assert.equal(ascii.status, 0);
  assert.ok(ascii.stdout.includes('GET /hello?x=1 HTTP/1.1\nHost: example.test') || ascii.stdout.includes('GET /hello?x=1 HTTP/1.1\r\nHost: example.test'), ascii.stdout);
  assert.ok(ascii.stdout.includes('hello, world'));
});

test('checksums: tshark verifies every IPv4 header and TCP checksum as good', async (t) => {
  if (!requireTshark(t)) return;
  const path = save(await encodeAll(http1Exchange()));
  const rows = tsharkFields(path, ['ip.checksum.status', 'tcp.checksum.status', '_ws.expert'], CHECKSUMS);
  assert.equal(rows.length, 9);
  for (const [ip, tcp] of rows) assert.deepEqual([ip, tcp], ['1', '1'], 'status 1 = good');
});

test('every packet carries a comment; data packets say which process and call; directions match', async (t) => {
  if (!requireTshark(t)) return;
  const path = save(await encodeAll(http1Exchange()));
  const rows = tsharkFields(path, ['frame.comment', 'frame.packet_flags_direction', 'tcp.flags.str', 'tcp.len', 'frame.time_epoch']);
  assert.equal(rows.length, 9);
  for (const r of rows) assert.ok(r[0]!.length > 0, 'comment present');
  const data = rows.filter((r) => r[3] !== '0');
  assert.deepEqual(
    data.map((r) => [r[0], r[1]]),
    [
      ['pid=1234 tid=1234 comm=curl uid=0 func=SSL_write conn=7', '0x00000002'],
      ['pid=1234 tid=1234 comm=curl uid=0 func=SSL_read conn=7', '0x00000001'],
      ['pid=1234 tid=1234 comm=curl uid=0 func=SSL_read conn=7', '0x00000001'],
    ],
  );
  assert.match(rows[0]![0]!, /synthesized SYN/);
  assert.match(rows.at(-1)![0]!, /synthesized close: SSL_free/);
  // Wall clock: monotonic 1000 ns + the test's offset (1700000000 s), to the nanosecond.
  assert.equal(data[0]![4], '1700000000.000001000');
  assert.equal(rows.at(-1)![4], '1700000000.000004000');
});

test('IPv6 endpoints: real addresses, checksums good, the URI dissected', async (t) => {
  if (!requireTshark(t)) return;
  const conn = connWith(3, ['2001:db8::10', 44000], ['2001:db8:1::20', 8080]);
  const path = save(
    await encodeAll([
      makeCall({ dir: 'write', data: REQUEST, tsNs: 10n, conn }),
      makeCall({ dir: 'read', data: RESPONSE, tsNs: 20n, conn }),
    ]),
  );
  const rows = tsharkFields(path, ['ipv6.src', 'ipv6.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.checksum.status', 'http.request.uri'], CHECKSUMS);
  assert.deepEqual(rows[0]!.slice(0, 5), ['2001:db8::10', '2001:db8:1::20', '44000', '8080', '1']);
  for (const r of rows) assert.equal(r[4], '1');
  assert.ok(rows.some((r) => r[5] === '/hello?x=1'));
  const flow = followRaw(path, 0);
  assert.equal(flow.server.toString('latin1'), RESPONSE);
});

test('a 1 MiB response is split into valid segments of at most 65535-byte IP packets', async (t) => {
  if (!requireTshark(t)) return;
  const big = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff;
  for (const [local, remote] of [
    [['10.0.0.1', 40000], ['10.0.0.2', 443]],
    [['fd00::1', 40000], ['fd00::2', 443]],
  ] as [[string, number], [string, number]][]) {
    const conn = connWith(11, local, remote);
    const path = save(
      await encodeAll([
        makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, conn }),
        makeCall({ dir: 'read', data: big, tsNs: 2n, conn }),
      ]),
    );
    const rows = tsharkFields(path, ['frame.len', 'tcp.len', 'tcp.checksum.status', 'tcp.analysis.flags'], CHECKSUMS);
    let total = 0;
    for (const [frameLen, tcpLen, status, flags] of rows) {
      assert.ok(Number(frameLen) <= 65535, `IP packet of ${frameLen} bytes`);
      assert.equal(status, '1');
      assert.equal(flags ?? '', '', 'no TCP analysis warnings');
      total += Number(tcpLen);
    }
    assert.equal(total, big.length + Buffer.byteLength(REQUEST));
    assert.ok(rows.filter((r) => Number(r[1]) > 0).length >= 17, 'split into many segments');
    assert.ok(followRaw(path, 0).server.equals(big), 'follow reproduces the 1 MiB exactly');
  }
});

test('HTTP/2 from node:http2 over TCP: with the decode-as option tshark shows :path', async (t) => {
  if (!requireTshark(t)) return;
  const recorded: { dir: 'read' | 'write'; data: Buffer }[] = [];
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    stream.end('hello over h2');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const serverPort = (server.address() as net.AddressInfo).port;
  let clientPort = 0;
  // A recording relay: what the client writes and reads, in order, as a TLS library would see it.
  const relay = net.createServer((c) => {
    clientPort = c.remotePort!;
    const up = net.connect(serverPort, '127.0.0.1');
    c.on('data', (d: Buffer) => {
      recorded.push({ dir: 'write', data: Buffer.from(d) });
      up.write(d);
    });
    up.on('data', (d: Buffer) => {
      recorded.push({ dir: 'read', data: Buffer.from(d) });
      c.write(d);
    });
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const relayPort = (relay.address() as net.AddressInfo).port;
  try {
    const client = http2.connect(`http://127.0.0.1:${relayPort}`);
    const body = await new Promise<string>((resolve, reject) => {
      const req = client.request({ ':path': '/h2/path?q=42' });
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => resolve(text));
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'hello over h2');
    await new Promise<void>((resolve) => client.close(() => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    relay.close();
    server.close();
  }
  const conn = connWith(21, ['127.0.0.1', clientPort], ['127.0.0.1', relayPort]);
  const calls = recorded.map((r, i) => makeCall({ dir: r.dir, data: r.data, tsNs: BigInt(i + 1) * 1000n, conn, comm: 'node' }));
  const { sink, bytes } = await (async () => {
    const chunks: Buffer[] = [];
    const out = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(Buffer.from(c)), cb()) });
    return { sink: createPcapngStreamSink(out, testContext, { header: FIXED_HEADER }), bytes: () => Buffer.concat(chunks) };
  })();
  for (const c of calls) sink.write(c);
  await sink.close();
  assert.deepEqual(sink.decodeAs, [{ port: relayPort, protocol: 'http2' }]);
  const path = save(bytes());
  const cmd = wiresharkCommand(path, sink.decodeAs, 'tshark');
  assert.equal(cmd, `tshark -d tcp.port==${relayPort},http2 -r ${path}`);
  const decode = ['-d', `tcp.port==${relayPort},http2`];
  const rows = tsharkFields(path, ['http2.header.name', 'http2.header.value'], decode);
  const names = rows.flatMap((r) => (r[0] ?? '').split(','));
  const values = rows.flatMap((r) => (r[1] ?? '').split(','));
  const i = names.indexOf(':path');
  assert.ok(i >= 0, `no :path header in ${JSON.stringify(rows)}`);
  assert.equal(values[i], '/h2/path?q=42');
  assert.ok(names.includes(':status'));
  const flow = followRaw(path, 0, decode);
  assert.ok(flow.client.equals(Buffer.concat(recorded.filter((r) => r.dir === 'write').map((r) => r.data))));
  assert.ok(flow.server.equals(Buffer.concat(recorded.filter((r) => r.dir === 'read').map((r) => r.data))));
});

test('HTTP/1 and HTTP/2 on the same port: decode-as http, which hands the HTTP/2 preface on', async (t) => {
  if (!requireTshark(t)) return;
  const h1 = connWith(1, ['10.0.0.1', 40001], ['10.0.0.2', 443]);
  const h2 = connWith(2, ['10.0.0.1', 40002], ['10.0.0.2', 443]);
  const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from('000000040000000000', 'hex')]);
  const { sink, bytes } = (() => {
    const chunks: Buffer[] = [];
    const out = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(Buffer.from(c)), cb()) });
    return { sink: createPcapngStreamSink(out, testContext, { header: FIXED_HEADER }), bytes: () => Buffer.concat(chunks) };
  })();
  sink.write(makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, conn: h1 }));
  sink.write(makeCall({ dir: 'write', data: preface, tsNs: 2n, conn: h2 }));
  await sink.close();
  assert.deepEqual(sink.decodeAs, [{ port: 443, protocol: 'http' }]);
  const path = save(bytes());
  const rows = tsharkFields(path, ['_ws.col.Protocol'], ['-d', 'tcp.port==443,http', '-Y', 'tcp.len > 0']);
  assert.deepEqual(rows, [['HTTP'], ['HTTP2']]);
});

test('placeholders when addresses are unknown: loopback from the pid, the reason in the SYN comment', async (t) => {
  if (!requireTshark(t)) return;
  const path = save(
    await encodeAll([
      makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, pid: 70000 }),
      makeCall({ dir: 'read', data: RESPONSE, tsNs: 2n, pid: 70000 }),
    ]),
  );
  const rows = tsharkFields(path, ['ip.src', 'tcp.srcport', 'ip.dst', 'tcp.dstport', 'frame.comment']);
  // pid 70000 = 0x11170: 127.1.0x11.0x70; the first connection number is 1: port 32769.
  assert.deepEqual(rows[0]!.slice(0, 4), ['127.1.17.112', '32769', '127.2.0.1', '443']);
  assert.match(rows[0]![4]!, /addresses unknown \(no connection information\): placeholders 127\.1\.17\.112:32769 -> 127\.2\.0\.1:443/);
  for (const r of rows) assert.match(r[4]!, /addr=placeholder/);
  assert.equal(followRaw(path, 0).client.toString('latin1'), REQUEST);
});

test('a server process (reads first) is the SYN receiver; known ports decide it too', async (t) => {
  if (!requireTshark(t)) return;
  const nginx = { pid: 800, tid: 800, comm: 'nginx' };
  const known = connWith(5, ['10.1.1.1', 443], ['10.9.9.9', 52000], 800);
  const path = save(
    await encodeAll([
      makeCall({ ...nginx, dir: 'read', data: REQUEST, tsNs: 1n, ssl: 1n }),
      makeCall({ ...nginx, dir: 'write', data: RESPONSE, tsNs: 2n, ssl: 1n }),
      // Known addresses, and the process's first call is a write: the ports still say server.
      makeCall({ ...nginx, dir: 'write', data: RESPONSE, tsNs: 3n, conn: known }),
    ]),
  );
  const syns = tsharkFields(path, ['ip.src', 'tcp.srcport', 'ip.dst', 'tcp.dstport', 'frame.packet_flags_direction'], ['-Y', 'tcp.flags.syn == 1 && tcp.flags.ack == 0']);
  assert.deepEqual(syns, [
    ['127.2.0.1', '32769', '127.1.3.32', '443', '0x00000001'],
    ['10.9.9.9', '52000', '10.1.1.1', '443', '0x00000001'],
  ]);
  const flow = followRaw(path, 0);
  assert.equal(flow.client.toString('latin1'), REQUEST);
  assert.equal(flow.server.toString('latin1'), RESPONSE);
});

test('lost and truncated bytes: sequence numbers skip them, tshark flags the gap, comments say so', async (t) => {
  if (!requireTshark(t)) return;
  const conn = connWith(8, ['10.0.0.1', 40000], ['10.0.0.2', 443]);
  const path = save(
    await encodeAll([
      makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, conn }),
      makeCall({ dir: 'read', data: 'HTTP/1.1 200 OK\r\n', tsNs: 2n, conn, truncated: 1000 }),
      makeCall({ dir: 'read', data: 'more', tsNs: 3n, conn, lost: 50 }),
      makeCall({ dir: 'read', data: 'tail', tsNs: 4n, conn }),
    ]),
  );
  const rows = tsharkFields(path, ['tcp.seq', 'tcp.len', 'tcp.analysis.lost_segment', 'frame.comment'], ['-Y', 'tcp.len > 0 && tcp.srcport == 443']);
  assert.deepEqual(rows.map((r) => [r[0], r[1]]), [
    ['1', '17'],
    ['1018', '4'],
    ['1072', '4'],
  ]);
  assert.equal(rows[0]![2] ?? '', '');
  assert.notEqual(rows[1]![2] ?? '', '', 'previous segment not captured');
  assert.notEqual(rows[2]![2] ?? '', '');
  assert.match(rows[0]![3]!, /truncated=1000/);
  assert.match(rows[1]![3]!, /lost=50 gap=1000 /);
  assert.match(rows[2]![3]!, /gap=50 /);
});

test('a lost chunk in the middle of a call: the bytes after it sit at their own sequence numbers', async (t) => {
  if (!requireTshark(t)) return;
  const conn = connWith(8, ['10.0.0.1', 40000], ['10.0.0.2', 443]);
  const path = save(
    await encodeAll([
      makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, conn }),
      makeCall({ dir: 'read', data: 'HEAD-TAIL', tsNs: 2n, conn, lost: 100, holes: [{ at: 5, length: 100 }] }),
    ]),
  );
  const rows = tsharkFields(path, ['tcp.seq', 'tcp.len', 'tcp.analysis.lost_segment'], ['-Y', 'tcp.len > 0 && tcp.srcport == 443']);
  assert.deepEqual(rows.map((r) => [r[0], r[1]]), [
    ['1', '5'],
    ['106', '4'],
  ]);
  assert.notEqual(rows[1]![2] ?? '', '', 'tshark sees the segment before TAIL as not captured');
});

test('same calls in, same bytes out', async () => {
  const a = await encodeAll(http1Exchange());
  const b = await encodeAll(http1Exchange());
  assert.ok(a.equals(b));
  const conn = connWith(9, ['10.0.0.1', 1], ['10.0.0.2', 2]);
  const c = await encodeAll([makeCall({ dir: 'write', data: REQUEST, tsNs: 5n, conn })]);
  assert.ok(!a.equals(c));
});

test('a file cut at any block boundary reads cleanly; cut mid-block, the earlier packets are intact', async (t) => {
  if (!requireTshark(t)) return;
  const file = await encodeAll(http1Exchange());
  const blocks = readBlocks(file);
  const full = tsharkFields(save(file), ['frame.number', 'tcp.seq', 'frame.comment']);
  for (let k = 2; k <= blocks.length; k++) {
    const end = k === blocks.length ? file.length : blocks[k]!.offset;
    const path = save(file.subarray(0, end));
    const r = run('tshark', ['-r', path, '-T', 'fields', '-e', 'frame.number', '-e', 'tcp.seq', '-e', 'frame.comment']);
    assert.equal(r.status, 0, `cut after block ${k}: ${r.stderr}`);
    const rows = r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
    assert.deepEqual(rows, full.slice(0, k - 2));
    const info = run('capinfos', ['-c', '-M', path]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`Number of packets:\\s+${k - 2}\\n`));
  }
  // Mid-block cuts: tshark prints the whole packets before the cut and exits 2 saying the file was cut short.
  for (const k of [3, 5, blocks.length - 1]) {
    const b = blocks[k]!;
    for (const cut of [b.offset + 4, b.offset + Math.floor(b.totalLength / 2), b.offset + b.totalLength - 1]) {
      const path = save(file.subarray(0, cut));
      const r = run('tshark', ['-r', path, '-T', 'fields', '-e', 'frame.number', '-e', 'tcp.seq', '-e', 'frame.comment']);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /cut short in the middle of a packet/);
      const rows = r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
      assert.deepEqual(rows, full.slice(0, k - 2));
      const info = run('capinfos', ['-c', '-M', path]);
      assert.equal(info.status, 1);
      assert.match(info.stderr, /cut short in the middle of a packet/);
      assert.match(info.stdout, new RegExp(`Number of packets:\\s+${k - 2}\\n`));
    }
  }
});

// ---- the sink as a file and on stdout ----

test('-w FILE: created 0600, bytes and packets counted, every connection closed at the end', async (t) => {
  if (!requireTshark(t)) return;
  const path = join(dir, 'sink.pcapng');
  writeFileSync(path, 'old contents', { mode: 0o644 });
  const sink = await createPcapngSink(path, testContext, { header: FIXED_HEADER });
  const conn = connWith(4, ['10.0.0.1', 40000], ['10.0.0.2', 8080]);
  sink.write(makeCall({ dir: 'write', data: REQUEST, tsNs: 1n, conn }));
  sink.write(makeCall({ dir: 'read', data: RESPONSE, tsNs: 2n, conn }));
  await sink.close();
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const bytes = readFileSync(path);
  assert.equal(sink.bytesWritten, bytes.length);
  assert.equal(sink.packetsWritten, readBlocks(bytes).length - 2);
  assert.equal(sink.packetsWritten, 3 + 2 + 3);
  const last = tsharkFields(path, ['tcp.flags.str', 'frame.comment']).at(-1)!;
  assert.match(last[1]!, /synthesized close: end of capture/);
  assert.equal(wiresharkCommand(path, sink.decodeAs), `wireshark -r ${path}`, 'HTTP on 8080 needs no decode-as');
});

test('-w in a missing directory: a clear OutputFileError before anything is captured', async () => {
  await assert.rejects(createPcapngSink(join(dir, 'no-such-dir', 'out.pcapng'), testContext), (err: unknown) => {
    assert.ok(err instanceof OutputFileError);
    assert.match(err.message, /no-such-dir does not exist/);
    return true;
  });
});

test('a write error mid-capture (ENOSPC) is reported once with the bytes and packets written', async () => {
  const limit = 5000;
  let taken = 0;
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (taken + chunk.length > limit) {
        const err: NodeJS.ErrnoException = new Error('no space left on device');
        err.code = 'ENOSPC';
        cb(err);
        return;
      }
      taken += chunk.length;
      cb();
    },
  });
  const reports: string[] = [];
  const sink = createPcapngStreamSink(out, testContext, { header: FIXED_HEADER, flushBytes: 1, onClosed: (_e, msg) => reports.push(msg) }, 'disk.pcapng');
  const conn = connWith(1, ['10.0.0.1', 40000], ['10.0.0.2', 443]);
  for (let i = 0; i < 50; i++) {
    sink.write(makeCall({ dir: 'write', data: Buffer.alloc(300, 'a'), tsNs: BigInt(i), conn }));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await sink.close();
  assert.equal(reports.length, 1);
  assert.equal(sink.error?.code, 'ENOSPC');
  assert.equal(sink.bytesWritten, taken);
  assert.ok(sink.bytesWritten > 0 && sink.bytesWritten <= limit);
  assert.equal(reports[0], `pcapng output to disk.pcapng stopped: no space left on device (ENOSPC) after ${taken} bytes (${sink.packetsWritten} packets)`);
  assert.equal(sink.failureMessage, reports[0]);
});

const CHILD = fileURLToPath(new URL('./support/pcapng-child.js', import.meta.url));

test('-w - into tshark: the stream reads as pcapng from a pipe', async (t) => {
  if (!requireTshark(t)) return;
  const child = spawnSync(`${JSON.stringify(process.execPath)} ${JSON.stringify(CHILD)} stdout 10 | tshark -r - -T fields -e frame.comment -Y 'tcp.len > 0'`, {
    shell: '/bin/bash',
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  const lines = child.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 10);
  assert.equal(lines[0], 'pid=1234 tid=1234 comm=curl uid=0 func=SSL_write ssl=0x5555aaaa0000 addr=placeholder');
  assert.match(child.stderr, /done bytes=\d+ packets=16 error=none/);
});

test('-w - into a reader that goes away (EPIPE): stops cleanly and says how much was written', () => {
  const child = spawnSync(`${JSON.stringify(process.execPath)} ${JSON.stringify(CHILD)} stdout 2000 | head -c 100 > /dev/null; echo "status=\${PIPESTATUS[0]}" >&2`, {
    shell: '/bin/bash',
    encoding: 'utf8',
  });
  assert.match(child.stderr, /pcapng output to stdout stopped: the reader went away \(EPIPE\) after \d+ bytes \(\d+ packets\)/);
  assert.match(child.stderr, /done bytes=\d+ packets=\d+ error=EPIPE/);
  assert.match(child.stderr, /status=0/);
});

test('kill -9 during a long capture leaves every block whole but at most the last, and every packet before it readable', async (t) => {
  if (!requireTshark(t)) return;
  const path = join(dir, 'killed.pcapng');
  const child = spawn(process.execPath, [CHILD, 'file', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (statSync(path).size > 4 * 1024 * 1024) break;
  }
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  const bytes = readFileSync(path);
  assert.ok(bytes.length > 4 * 1024 * 1024, `only ${bytes.length} bytes written`);
  const blocks = readBlocks(bytes);
  const whole = blocks.reduce((n, b) => n + b.totalLength, 0);
  // Linux may cut a write() short at a page boundary when SIGKILL arrives during it: only the
  // block being written then can be incomplete.
  assert.ok(bytes.length - whole < 70 * 1024, `${bytes.length - whole} bytes after the last whole block: more than one block`);
  for (const b of blocks) assert.equal(b.trailingLength, b.totalLength, `block at ${b.offset} is whole`);
  const r = run('tshark', ['-r', path, '-T', 'fields', '-e', 'tcp.checksum.status', ...CHECKSUMS]);
  if (whole === bytes.length) assert.equal(r.status, 0, r.stderr);
  else assert.match(r.stderr, /cut short in the middle of a packet/, 'tshark names the cut last block and nothing else');
  const statuses = r.stdout.split('\n').filter((l) => l !== '');
  assert.equal(statuses.length, blocks.length - 2, 'every packet of a whole block is read');
  assert.ok(statuses.every((s) => s === '1'));
});

/** The payload sum of `data` by the kernel and by the byte-pair reference, finished as checksums. */
function checksumPair(summer: PayloadSummer, data: Uint8Array): [number, number] {
  return [finishChecksum(summer.sum(data)), finishChecksum(sum16(data, 0, data.length))];
}

test('checksum: the kernel sums every byte value at every place of a 16-byte block and of the tail like the reference', () => {
  const summer = new PayloadSummer();
  forEachByteAtEachPlace(35, 0x3c, (data, label) => {
    const [kernel, reference] = checksumPair(summer, data);
    assert.equal(kernel, reference, label);
  });
});

test('checksum: the kernel equals the reference at every alignment, every length to 100, random lengths and carries', () => {
  const summer = new PayloadSummer();
  const rand = random(99);
  const memory = Buffer.alloc(600_000);
  const fills: ((i: number) => number)[] = [() => rand(256), () => 0, () => 0xff, (i) => (i % 7 === 0 ? 0xff : 0)];
  for (let length = 0; length <= 100; length++) {
    for (let offset = 0; offset < 16; offset++) {
      for (let i = 0; i < length; i++) memory[offset + i] = rand(256);
      const data = memory.subarray(offset, offset + length);
      const [kernel, reference] = checksumPair(summer, data);
      assert.equal(kernel, reference, `${length} bytes at offset ${offset}`);
    }
  }
  for (let round = 0; round < 300; round++) {
    const fill = fills[round % fills.length]!;
    // Past 256 KiB the kernel folds its lanes on the way: all-0xff payloads test the carries.
    const length = round < 200 ? rand(65_536) : rand(memory.length - 16);
    const offset = rand(16);
    for (let i = 0; i < length; i++) memory[offset + i] = fill(i);
    const data = memory.subarray(offset, offset + length);
    const [kernel, reference] = checksumPair(summer, data);
    assert.equal(kernel, reference, `round ${round}: ${length} bytes at offset ${offset}`);
    assert.equal(summer.sum(data) === 0, sum16(data, 0, length) === 0, `round ${round}: zero stays zero`);
  }
});
