// Tests for src/remote/protocol.ts: the agent protocol's frames, requests and results, and the mirror
// of agent/protocol.h.
import { describe, it } from 'node:test';
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_MAGIC, RECORD_FORMAT_VERSION, encodeFrameHeader } from '../src/record/format.js';
import {
  AGENT_PROTOCOL,
  Args,
  FrameDecoder,
  MARK,
  MAX_PAYLOAD,
  MAX_READ,
  MAX_REQUEST,
  OP,
  PLAN_CREATED_AT,
  PLAN_MAGIC,
  PLAN_MONOTONIC_TO_WALL,
  PLAN_VERSION,
  ProtocolError,
  READFILE_TRUNCATED,
  STAT_NOFOLLOW,
  STAT_SIZE,
  decodeDirents,
  decodeHello,
  decodeResponse,
  decodeStat,
  encodeFrame,
  encodeRequest,
} from '../src/remote/protocol.js';
import { packageRoot } from '../src/util/package-root.js';

/** The #defines and enum members of agent/protocol.h, evaluated (they are integers, shifts and strings). */
function headerValues(): Map<string, number | string> {
  const text = readFileSync(join(packageRoot(), 'agent', 'protocol.h'), 'utf8');
  const values = new Map<string, number | string>();
  for (const m of text.matchAll(/^#define (TLSTAP_AGENT_\w+) (.+?)\s*(?:\/\*.*)?$/gm)) {
    const expr = m[2]!.trim();
    const str = /^"(.*)"$/.exec(expr);
    const shift = /^\((\d+) << (\d+)\)$/.exec(expr);
    const num = /^(\d+)u?$/.exec(expr);
    if (str) values.set(m[1]!, str[1]!);
    else if (shift) values.set(m[1]!, Number(shift[1]) * 2 ** Number(shift[2]));
    else if (num) values.set(m[1]!, Number(num[1]));
  }
  for (const m of text.matchAll(/^\s*(TLSTAP_AGENT_OP_\w+) = (\d+),/gm)) values.set(m[1]!, Number(m[2]));
  return values;
}

describe('the TypeScript mirror of agent/protocol.h', () => {
  const h = headerValues();
  it('has the same version, limits, markers and flags', () => {
    assert.equal(h.get('TLSTAP_AGENT_PROTOCOL'), AGENT_PROTOCOL);
    assert.equal(h.get('TLSTAP_AGENT_MAX_REQUEST'), MAX_REQUEST);
    assert.equal(h.get('TLSTAP_AGENT_MAX_PAYLOAD'), MAX_PAYLOAD);
    assert.equal(h.get('TLSTAP_AGENT_MAX_READ'), MAX_READ);
    assert.equal(h.get('TLSTAP_AGENT_FRAME_HEADER'), 16);
    assert.equal(h.get('TLSTAP_AGENT_STAT_SIZE'), STAT_SIZE);
    assert.equal(h.get('TLSTAP_AGENT_STAT_NOFOLLOW'), STAT_NOFOLLOW);
    assert.equal(h.get('TLSTAP_AGENT_READFILE_TRUNCATED'), READFILE_TRUNCATED);
    assert.equal(h.get('TLSTAP_AGENT_MARK_REQUEST'), MARK.request);
    assert.equal(h.get('TLSTAP_AGENT_MARK_RESPONSE'), MARK.response);
    assert.equal(h.get('TLSTAP_AGENT_MARK_RECORDS'), MARK.records);
    assert.equal(h.get('TLSTAP_AGENT_MARK_LOG'), MARK.log);
    assert.equal(h.get('TLSTAP_AGENT_MARK_PLAN_HEADER'), MARK.planHeader);
    assert.equal(h.get('TLSTAP_AGENT_MARK_PLAN_CHECK'), MARK.planCheck);
    assert.equal(h.get('TLSTAP_AGENT_PLAN_MAGIC'), PLAN_MAGIC);
    assert.equal(h.get('TLSTAP_AGENT_PLAN_VERSION'), PLAN_VERSION);
    assert.equal(h.get('TLSTAP_AGENT_PLAN_CREATED_AT'), PLAN_CREATED_AT);
    assert.equal(h.get('TLSTAP_AGENT_PLAN_MONOTONIC_TO_WALL'), PLAN_MONOTONIC_TO_WALL);
    // The recording the agent writes on its own is the format src/record/ reads.
    assert.equal(h.get('TLSTAP_AGENT_RECORD_MAGIC'), FILE_MAGIC.toString('latin1'));
    assert.equal(h.get('TLSTAP_AGENT_RECORD_VERSION'), RECORD_FORMAT_VERSION);
  });
  it('has every op with its number, and no other', () => {
    const ops = [...h].filter(([k]) => k.startsWith('TLSTAP_AGENT_OP_')).map(([k, v]) => [k.slice('TLSTAP_AGENT_OP_'.length), v]);
    assert.ok(ops.length >= 19, `found only ${ops.length} ops in agent/protocol.h`);
    assert.deepEqual(Object.fromEntries(ops), { ...OP });
  });
});

describe('frames', () => {
  it('a record batch travels as the very frame --record writes', () => {
    const payload = Buffer.from([5, 0, 0, 0, 1, 2, 3, 4, 5]);
    const frame = encodeFrame('records', 1, payload);
    assert.deepEqual(frame.subarray(0, 16), encodeFrameHeader(payload, 1));
    assert.deepEqual(frame.subarray(16), payload);
  });

  it('a stream cut anywhere gives the same frames, in order', () => {
    const sent = [
      encodeFrame('response', 7, Buffer.from('hello')),
      encodeFrame('records', 2, Buffer.alloc(3000, 0xab)),
      encodeFrame('log', 3, Buffer.alloc(0)),
      encodeFrame('request', 0xffffffff, Buffer.from([1, 2, 3])),
    ];
    const stream = Buffer.concat(sent);
    for (const step of [1, 3, 16, 17, 1000, stream.length]) {
      const d = new FrameDecoder();
      const got = [];
      for (let at = 0; at < stream.length; at += step) got.push(...d.push(stream.subarray(at, at + step)));
      d.end();
      assert.deepEqual(
        got.map((f) => [f.kind, f.field, f.payload.length]),
        [['response', 7, 5], ['records', 2, 3000], ['log', 3, 0], ['request', 0xffffffff, 3]],
        `in pieces of ${step}`,
      );
      assert.equal(got[0]!.payload.toString(), 'hello');
    }
  });

  it('a stream that ends inside a frame is reported, with how much of it came', () => {
    const frame = encodeFrame('response', 1, Buffer.from('abcdef'));
    for (const cut of [1, 15, 16, 21]) {
      const d = new FrameDecoder();
      assert.deepEqual(d.push(frame.subarray(0, cut)), []);
      assert.throws(() => d.end(), (err: unknown) => err instanceof ProtocolError && err.message.includes(`${cut} bytes of it arrived`));
    }
  });

  it('a flipped bit anywhere in a frame is caught, and the decoder stays failed', () => {
    const good = encodeFrame('response', 9, Buffer.from('some payload bytes'));
    for (let bit = 0; bit < good.length * 8; bit++) {
      const bad = Buffer.from(good);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const d = new FrameDecoder();
      let threw: unknown;
      let frames;
      try {
        frames = d.push(Buffer.concat([bad, good]));
      } catch (err) {
        threw = err;
      }
      // A changed length may make the decoder wait for more: then the end says the stream was cut.
      if (threw === undefined) assert.throws(() => d.end(), ProtocolError, `bit ${bit}: ${JSON.stringify(frames)}`);
      else {
        assert.ok(threw instanceof ProtocolError, `bit ${bit}`);
        assert.throws(() => d.push(good), ProtocolError);
      }
    }
  });

  it('a length over the limit is refused before any of it is buffered', () => {
    const head = Buffer.alloc(16);
    head.write('TRSP', 0, 'latin1');
    head.writeUInt32LE(4097, 4);
    const d = new FrameDecoder(4096);
    assert.throws(() => d.push(head), /4097 bytes is over the 4096-byte limit at byte 0/);
  });

  it('a marker that is not the protocol (a shell printing text) is named', () => {
    const d = new FrameDecoder();
    assert.throws(() => d.push(Buffer.from('sh: 1: tlstap-agent: not found\n')), /bad frame marker "sh: "/);
  });
});

describe('requests and results', () => {
  it('a request is its op and its arguments, little-endian', () => {
    const args = new Args().u64(0x0102030405060708n).u32(0xfffffffe).u16(0x1234).u8(7).str16('ab').bytes('/x').done();
    assert.deepEqual(
      [...encodeRequest(OP.PREAD, args)],
      [3, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0xfe, 0xff, 0xff, 0xff, 0x34, 0x12, 7, 2, 0, 0x61, 0x62, 0x2f, 0x78],
    );
  });

  it('refuses a NUL inside a string and a request over the limit', () => {
    assert.throws(() => new Args().bytes('/etc/passwd\0.so'), /NUL byte/);
    assert.throws(() => encodeRequest(OP.SET_GLOBAL, Buffer.alloc(MAX_REQUEST)), /limit/);
  });

  it('a response is a status and a result, or a negative errno and a message', () => {
    assert.deepEqual(decodeResponse(Buffer.from([0, 0, 0, 0, 9])), { status: 0, result: Buffer.from([9]) });
    const err = Buffer.concat([Buffer.from([0xfe, 0xff, 0xff, 0xff]), Buffer.from('No such file or directory')]);
    assert.deepEqual(decodeResponse(err), { status: -2, message: 'No such file or directory' });
    assert.throws(() => decodeResponse(Buffer.from([0, 0])), ProtocolError);
  });

  it('decodes STAT, READDIR and HELLO results, and refuses cut ones', () => {
    const st = Buffer.alloc(STAT_SIZE);
    st.writeUInt32LE(0o100644, 0);
    st.writeBigUInt64LE(12345n, 24);
    st.writeBigUInt64LE(688160n, 32);
    st.writeBigInt64LE(-1n, 40);
    assert.deepEqual([decodeStat(st).mode, decodeStat(st).ino, decodeStat(st).size, decodeStat(st).mtimeNs], [0o100644, 12345n, 688160n, -1n]);
    assert.throws(() => decodeStat(st.subarray(1)), ProtocolError);

    const dir = Buffer.from([8, 0, 3, 0, 0x61, 0x62, 0x63, 4, 0, 1, 0, 0x64]);
    assert.deepEqual(decodeDirents(dir), [{ name: 'abc', type: 8 }, { name: 'd', type: 4 }]);
    assert.throws(() => decodeDirents(dir.subarray(0, 6)), /runs past/);

    const json = '{"agent":"0.1.0","protocol":1,"pid":5,"selfCrc32":1,"selfSize":2,"core":false,"machine":"aarch64","kernel":"6.1","hostname":"h","root":"/"}';
    const hello = Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.from(json)]);
    assert.equal(decodeHello(hello).machine, 'aarch64');
    const other = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from(json)]);
    assert.throws(() => decodeHello(other), /disagrees on the protocol/);
  });
});
