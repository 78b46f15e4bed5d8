import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeConnection, formatEndpoint, formatIpv4, formatIpv6, parseIpAddress } from '../src/events/addresses.js';

test('IPv6 text is RFC 5952: the longest zero run (the first on a tie) becomes ::', () => {
  const v6 = (hex: string) => formatIpv6(Buffer.from(hex, 'hex'));
  assert.equal(v6('00000000000000000000000000000001'), '::1');
  assert.equal(v6('00000000000000000000000000000000'), '::');
  assert.equal(v6('20010db8000000000001000000000001'), '2001:db8::1:0:0:1');
  assert.equal(v6('20010db8000100020003000400050006'), '2001:db8:1:2:3:4:5:6');
  assert.equal(v6('00000000000000000000ffff7f000001'), '::ffff:127.0.0.1');
  assert.equal(formatIpv4(Buffer.from([192, 0, 2, 1])), '192.0.2.1');
});

test('addresses parse back to their bytes, and bad ones are refused', () => {
  for (const text of ['::1', '::', '2001:db8::1:0:0:1', '2001:db8:1:2:3:4:5:6', '::ffff:127.0.0.1']) {
    const parsed = parseIpAddress(text);
    assert.equal(parsed?.family, 'ipv6', text);
    assert.equal(formatIpv6(parsed!.bytes), text);
  }
  assert.deepEqual(parseIpAddress('[::1]')?.bytes, Buffer.from('00000000000000000000000000000001', 'hex'));
  assert.deepEqual(parseIpAddress('10.1.2.3'), { family: 'ipv4', bytes: Buffer.from([10, 1, 2, 3]) });
  for (const bad of ['1.2.3', '256.1.1.1', '1::2::3', 'x', '1:2:3:4:5:6:7:8:9', '', '1:2:3:4:5:6:7', 'g::1']) {
    assert.equal(parseIpAddress(bad), undefined, bad);
  }
});

test('endpoints and connections read the way users write them', () => {
  assert.equal(formatEndpoint({ ip: '::1', port: 443 }), '[::1]:443');
  assert.equal(formatEndpoint({ ip: '127.0.0.1', port: 8443 }), '127.0.0.1:8443');
  const conn = { id: 3, pid: 1, ssl: 1n, fd: 4, local: { ip: '127.0.0.1', port: 40000 }, remote: { ip: '127.0.0.1', port: 443 } };
  assert.equal(describeConnection(conn), 'conn=3 fd=4 127.0.0.1:40000 → 127.0.0.1:443');
  assert.equal(describeConnection({ id: 3, pid: 1, ssl: 1n, fd: -1, unknownReason: 'memory BIO' }), 'conn=3 (addresses unknown: memory BIO)');
});
