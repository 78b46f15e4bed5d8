// HTTP fidelity on crafted byte streams: big single writes, bytes above 0x7f in heads, gaps of
// known length inside bodies (skipped and counted), resynchronisation after a gap in a response
// head, and HTTP/2 streams whose message is whole without END_STREAM.
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import assert from 'node:assert/strict';
import { harEntry, harLog } from '../src/har/index.js';
import { BodyBuilder } from '../src/http/message.js';
import { HttpTracker } from '../src/http/tracker.js';
import { createHttpSink, ExchangeFormatter } from '../src/output/http.js';
import { call, ctx, decodeCalls, frame, FT, HeaderEncoder, PREFACE, validateHar } from './support/http-streams.js';

const decode = decodeCalls;

const OK_EMPTY = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';

for (const size of [90_000, 1_400_000, 5 * 1024 * 1024]) {
  test(`a ${size}-byte body in one write, then a GET on the same connection: both exchanges, every byte`, async () => {
    const body = Buffer.alloc(size, 'x');
    const { got, tracker } = await decode([
      call('write', `PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: ${size}\r\n\r\n`),
      call('write', body),
      call('read', OK_EMPTY),
      call('write', 'GET /after HTTP/1.1\r\nHost: h\r\n\r\n'),
      // The response's head and its whole body in one read, as a Node server's res.end() sends it.
      call('read', Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`), body])),
    ]);
    assert.deepEqual(got.fallbacks, []);
    assert.deepEqual(got.exchanges.map((e) => [e.request.method, e.request.target, e.request.body.size, e.response?.status, e.response?.body.size, e.incomplete]), [
      ['PUT', '/up', size, 200, 0, undefined],
      ['GET', '/after', 0, 200, size, undefined],
    ]);
    assert.ok(got.exchanges[0]!.request.body.bytes.equals(body));
    assert.equal(tracker.stats.incompleteExchanges, 0);
  });
}

test('a request head over 1 MiB is refused as malformed; a 16 KiB cookie is not', async () => {
  const cookie = `a=${'c'.repeat(16 * 1024)}`;
  const { got } = await decode([call('write', `GET /c HTTP/1.1\r\nHost: h\r\nCookie: ${cookie}\r\n\r\n`), call('read', OK_EMPTY)]);
  assert.equal(got.exchanges[0]!.request.headers.find((h) => h.name === 'Cookie')!.value, cookie);
  const huge = await decode([call('write', `GET /h HTTP/1.1\r\nX-Big: ${'b'.repeat(1 << 20)}`)]);
  assert.deepEqual(huge.got.fallbacks.map((f) => [f.reason, f.detail]), [['malformed', 'request: a head of more than 1048576 bytes']]);
});

test('UTF-8 in the request target and header values is kept; other high bytes are latin-1, flagged', async () => {
  const head = Buffer.concat([
    Buffer.from('GET /s?q=\u00fc HTTP/1.1\r\nHost: h\r\nX-Name: Jos\u00e9\r\n', 'utf8'),
    Buffer.from([...Buffer.from('X-Raw: caf'), 0xe9, 0x0d, 0x0a, 0x0d, 0x0a]),
  ]);
  const { got } = await decode([call('write', head), call('read', Buffer.from('HTTP/1.1 200 \u00c7a va\r\nContent-Length: 0\r\n\r\n', 'utf8'))]);
  const ex = got.exchanges[0]!;
  assert.equal(ex.request.target, '/s?q=\u00fc');
  assert.equal(ex.request.url, 'https://h/s?q=\u00fc');
  assert.deepEqual(ex.request.headers.slice(1), [
    { name: 'X-Name', value: 'Jos\u00e9' },
    { name: 'X-Raw', value: 'caf\u00e9', latin1: true },
  ]);
  assert.equal(ex.response!.statusText, '\u00c7a va');
});

test('--max-bytes cut inside a Content-Length body: the rest is skipped and counted, the next exchange decodes', async () => {
  const { got, tracker } = await decode([
    // 30 bytes captured of the 1000-byte body, 970 truncated.
    call('write', `POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(30)}`, { truncated: 970 }),
    call('read', OK_EMPTY),
    call('write', 'POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc'),
    call('read', 'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'),
  ]);
  assert.deepEqual(got.fallbacks, []);
  const [one, two] = got.exchanges;
  assert.equal(one!.request.body.size, 1000);
  assert.equal(one!.request.body.missing, 970);
  assert.equal(one!.request.body.complete, false);
  assert.equal(one!.request.body.bytes.toString(), 'a'.repeat(30));
  assert.equal(one!.incomplete, 'request body: 970 bytes not captured');
  assert.match(new ExchangeFormatter(ctx, { color: false, redact: false }).format(one!), /\[body 1000 bytes, incomplete: 970 bytes not captured\]\na{30}\n/);
  assert.equal(two!.request.body.bytes.toString(), 'abc');
  assert.equal(two!.response!.status, 201);
  assert.equal(two!.incomplete, undefined);
  assert.equal(tracker.stats.incompleteExchanges, 1);
});

test('a ring-buffer hole inside a response body: the body goes on after it, counted, and the next exchange decodes', async () => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n';
  const body = Buffer.from('a'.repeat(100) + 'b'.repeat(100) + 'c'.repeat(100));
  // The kernel's chunk holding the b's never arrived: the call has the a's and c's, a hole between.
  const received = Buffer.concat([Buffer.from(head), body.subarray(0, 100), body.subarray(200)]);
  const { got, tracker } = await decode([
    call('write', 'GET /big HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', received, { lost: 100, holes: [{ at: head.length + 100, length: 100 }] }),
    call('write', 'GET /next HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
  ]);
  assert.deepEqual(got.fallbacks, []);
  const [big, next] = got.exchanges;
  assert.deepEqual([big!.response!.body.size, big!.response!.body.missing, big!.response!.body.complete], [300, 100, false]);
  // A body keeps one contiguous prefix (message.ts BodyBuilder): the c's count in the size only.
  assert.equal(big!.response!.body.bytes.toString(), 'a'.repeat(100));
  assert.match(big!.incomplete ?? '', /100 bytes not captured/);
  assert.equal(next!.response!.body.bytes.toString(), 'ok');
  assert.equal(next!.incomplete, undefined);
  assert.equal(tracker.stats.incompleteExchanges, 1);
});

test('a ring-buffer hole in a request head ends decoding with the reason; the bytes after it are shown raw', async () => {
  const { got } = await decode([
    call('write', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'),
    call('write', 'GET /b HTTP/1.1\r\nHo: h\r\n\r\n', { lost: 40, holes: [{ at: 12, length: 40 }] }),
  ]);
  assert.equal(got.exchanges.length, 1);
  assert.equal(got.fallbacks.length, 1);
  assert.match(got.fallbacks[0]!.detail, /40 bytes lost \(ring buffer full\)/);
});

test('lost bytes whose place is unknown still end decoding, as before', async () => {
  const { got } = await decode([
    call('write', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123', { lost: 6 }),
  ]);
  assert.equal(got.fallbacks.length, 1);
  assert.match(got.fallbacks[0]!.detail, /6 bytes lost in a SSL_read/);
});

test('a cut inside a chunk is skipped; the chunked body and its trailers go on', async () => {
  const { got } = await decode([
    call('write', 'GET /chunks HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabcd', { truncated: 252 }),
    call('read', '\r\n3\r\nxyz\r\n0\r\nX-Sum: 1\r\n\r\n'),
    call('write', 'GET /next HTTP/1.1\r\nHost: h\r\n\r\n'),
    call('read', OK_EMPTY),
  ]);
  assert.deepEqual(got.fallbacks, []);
  const res = got.exchanges[0]!.response!;
  assert.deepEqual([res.body.size, res.body.missing, res.body.bytes.toString()], [259, 252, 'abcd']);
  assert.deepEqual(res.trailers, [{ name: 'X-Sum', value: '1' }]);
  assert.equal(got.exchanges[1]!.request.target, '/next');
});

test('a gap that runs past a response into the next head: that response is cut, decoding resumes at a status line', async () => {
  const { got } = await decode([
    call('write', 'GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n'),
    // /a's body is 10 bytes: 4 captured, 6 in the gap, and 20 more bytes of /b's response head.
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123', { truncated: 26 }),
    call('read', 'Length: 2\r\n\r\nbb'),
    call('read', 'HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nc'),
  ]);
  assert.deepEqual(got.fallbacks, []);
  assert.deepEqual(got.exchanges.map((e) => [e.request.target, e.response?.status, e.incomplete]), [
    ['/a', 200, 'response body: 6 bytes not captured'],
    ['/b', undefined, 'no response: 26 bytes truncated (--max-bytes) in a SSL_read of 69 bytes, in the head of a response'],
    ['/c', 404, undefined],
  ]);
  assert.deepEqual(got.exchanges[2]!.notes, ['35 response bytes before this response were skipped after a gap']);
});

test('a gap in a request head ends decoding of the connection, with the reason', async () => {
  const { got } = await decode([call('write', 'GET /a HTTP/1.1\r\nHo', { truncated: 100 }), call('write', 'GET /b HTTP/1.1\r\n\r\n')]);
  assert.deepEqual(got.fallbacks.map((f) => f.reason), ['gap']);
  assert.match(got.fallbacks[0]!.detail, /100 bytes truncated .* in the head of a request/);
});

const END_STREAM = 0x1;
const END_HEADERS = 0x4;

function h2Request(client: HeaderEncoder, id: number, path: string): Buffer {
  return frame(FT.HEADERS, END_HEADERS | END_STREAM, id, client.block([[':method', 'GET'], [':scheme', 'https'], [':authority', 'a'], [':path', path]]));
}

test('HTTP/2: a cut inside a DATA frame is a counted hole; later frames and streams decode', async () => {
  const client = new HeaderEncoder();
  const server = new HeaderEncoder();
  const data = frame(FT.DATA, END_STREAM, 1, Buffer.alloc(1000, 'd'));
  const { got } = await decode([
    call('write', Buffer.concat([PREFACE, frame(FT.SETTINGS, 0, 0), h2Request(client, 1, '/big'), h2Request(client, 3, '/small')])),
    call('read', Buffer.concat([frame(FT.SETTINGS, 0, 0), frame(FT.HEADERS, END_HEADERS, 1, server.block([[':status', '200']])), data.subarray(0, 109)]), { truncated: 600 }),
    call('read', Buffer.concat([data.subarray(709), frame(FT.HEADERS, END_HEADERS | END_STREAM, 3, server.block([[':status', '204']]))])),
  ]);
  assert.deepEqual(got.fallbacks, []);
  const big = got.exchanges.find((e) => e.streamId === 1)!;
  assert.deepEqual([big.response!.body.size, big.response!.body.missing, big.response!.body.bytes.toString()], [1000, 600, 'd'.repeat(100)]);
  assert.equal(big.incomplete, 'response body: 600 bytes not captured');
  assert.equal(got.exchanges.find((e) => e.streamId === 3)!.response!.status, 204);
});

test('HTTP/2: a response with its whole Content-Length is complete though the END_STREAM frame was never read', async () => {
  const client = new HeaderEncoder();
  const server = new HeaderEncoder();
  const { got } = await decode([
    call('write', Buffer.concat([PREFACE, frame(FT.SETTINGS, 0, 0), h2Request(client, 1, '/whole'), h2Request(client, 3, '/short')])),
    call('read', Buffer.concat([
      frame(FT.SETTINGS, 0, 0),
      frame(FT.HEADERS, END_HEADERS, 1, server.block([[':status', '200'], ['content-length', '5']])),
      frame(FT.DATA, 0, 1, Buffer.from('hello')),
      frame(FT.HEADERS, END_HEADERS, 3, server.block([[':status', '200'], ['content-length', '9']])),
      frame(FT.DATA, 0, 3, Buffer.from('hel')),
    ])),
  ]);
  const byPath = Object.fromEntries(got.exchanges.map((e) => [e.request.target, e]));
  assert.equal(byPath['/whole']!.incomplete, undefined);
  assert.equal(byPath['/whole']!.response!.body.complete, true);
  assert.match(byPath['/whole']!.notes[0]!, /did not end .* whole body/);
  assert.match(byPath['/short']!.incomplete!, /^response cut/);
});

test('a server process on a connection that is not HTTP is labelled server in its fallback', async () => {
  const local = { ip: '127.0.0.1', port: 5432 };
  const remote = { ip: '127.0.0.1', port: 51000 };
  const byPorts = await decode([call('read', '\x00\x00\x00\x08\x04\xd2\x16\x2f', { comm: 'postgres', ssl: 1n, conn: { id: 1, pid: 4242, ssl: 1n, fd: 9, local, remote } })]);
  assert.deepEqual(byPorts.got.fallbacks.map((f) => [f.reason, f.conn.role]), [['not-http', 'server']]);
  // Without addresses: the side that read first is the server (redis, postgres: the client speaks first).
  const byOrder = await decode([call('read', '*1\r\n$4\r\nPING\r\n', { comm: 'redis-server', ssl: 2n }), call('write', '+PONG\r\n', { comm: 'redis-server', ssl: 2n })]);
  assert.deepEqual(byOrder.got.fallbacks.map((f) => f.conn.role), ['server']);
  const client = await decode([call('write', '*1\r\n$4\r\nPING\r\n', { comm: 'redis-cli', ssl: 3n })]);
  assert.deepEqual(client.got.fallbacks.map((f) => f.conn.role), ['client']);
});

test('HAR postData: a multipart upload with a binary file gives params, the body as base64 with _encoding', async () => {
  const file = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0x10]);
  const body = Buffer.concat([
    Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="title"\r\n\r\nJos\u00e9\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'),
    file,
    Buffer.from('\r\n--XyZ--\r\n'),
  ]);
  const { got } = await decode([
    call('write', Buffer.concat([Buffer.from(`POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${body.length}\r\n\r\n`), body])),
    call('read', OK_EMPTY),
  ]);
  const entry = harEntry(got.exchanges[0]!, ctx, { redact: false });
  const post = entry.request.postData!;
  assert.deepEqual(post.params, [
    { name: 'title', value: 'Jos\u00e9' },
    { name: 'file', value: file.toString('base64'), comment: 'binary, 7 bytes: value is base64', fileName: 'a.png', contentType: 'image/png' },
  ]);
  assert.equal(post._encoding, 'base64');
  assert.ok(Buffer.from(post.text, 'base64').equals(body));
  assert.deepEqual(validateHar(harLog([entry])), []);
});

test('a response cut mid-body has the time of its last captured bytes as HAR receive', async () => {
  const t0 = 7_000_000_000n;
  const { got } = await decode([
    call('write', 'GET /slow HTTP/1.1\r\nHost: h\r\n\r\n', { tsNs: t0 }),
    call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab', { tsNs: t0 + 10_000_000n }),
    call('read', 'cd', { tsNs: t0 + 250_000_000n }),
  ]);
  const entry = harEntry(got.exchanges[0]!, ctx, { redact: false });
  assert.match(got.exchanges[0]!.incomplete!, /^response cut/);
  assert.equal(entry.timings.receive, 240);
});

test('-f http after a fallback: the failing call is not shown twice, and a long raw connection is cut to a count', async () => {
  const out: Buffer[] = [];
  const tracker = new HttpTracker();
  const stream = new Writable({ write: (chunk: Buffer, _enc, cb) => (out.push(Buffer.from(chunk)), cb()) });
  createHttpSink(stream, ctx, { color: false, redact: false, tracker });
  tracker.write(call('write', 'POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nBODY-ONCE!'));
  tracker.write(call('read', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', { lost: 3 }));
  for (let i = 0; i < 100; i++) tracker.write(call('read', Buffer.alloc(1024, 'r')));
  await tracker.close();
  const text = Buffer.concat(out).toString();
  assert.equal(text.split('BODY-ONCE!').length, 2, text.slice(0, 2000));
  assert.match(text, /\[body 10 bytes\]\nBODY-ONCE!/);
  assert.match(text, /raw calls after the first 64 KiB not shown, from here/);
  assert.match(text, /raw calls after the first 64 KiB not shown, 36 calls \(36864 bytes\) in all/);
});

test('a body past its first MiB is kept in one buffer, filled in place: the bytes up to the cap, the size beyond it', () => {
  const cap = 3 * 1024 * 1024 + 5;
  const builder = new BodyBuilder(cap);
  const sent = randomBytes(4 * 1024 * 1024);
  for (let at = 0; at < sent.length; at += 16 * 1024 + 3) builder.add(sent, at, Math.min(at + 16 * 1024 + 3, sent.length));
  const body = builder.finish(true);
  assert.equal(body.size, sent.length);
  assert.ok(body.bytes.equals(sent.subarray(0, cap)), 'the first bytes up to the cap');
  // The kept bytes are a view of the one buffer they were written into: never joined from pieces.
  assert.equal(body.bytes.buffer.byteLength, cap);
  const small = new BodyBuilder(cap);
  small.add(sent, 0, 1000);
  small.add(sent, 1000, 5000);
  assert.ok(small.finish(true).bytes.equals(sent.subarray(0, 5000)), 'a small body from its pieces');
});
