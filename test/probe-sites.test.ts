// Kernels without attach cookies tell the probed file by (function, page offset of the probe's
// address): the table user space gives the kernel, and what it cannot tell apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeSites } from '../src/capture/session.js';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { PROBED_FUNCTIONS } from '../src/events/types.js';

const K = EVENT_LAYOUT.constants;
const func = (name: (typeof PROBED_FUNCTIONS)[number]) => PROBED_FUNCTIONS.indexOf(name);

test('each (function, page offset) names its file; one shared by two files is ambiguous, and said so', () => {
  const { sites, ambiguous } = probeSites([
    { path: '/lib/libssl.so.3', functions: [{ name: 'SSL_read', fileOffset: 0x3a120n }, { name: 'SSL_write', fileOffset: 0x3b450n }] },
    // SSL_read at another page offset: told apart. SSL_write at the same one (0x450): not.
    { path: '/usr/bin/node', functions: [{ name: 'SSL_read', fileOffset: 0x1c0f9130n }, { name: 'SSL_write', fileOffset: 0x1c0fa450n }] },
    // gnutls_record_send at page offset 0x450 too, but another function: told apart.
    { path: '/lib/libgnutls.so.30', functions: [{ name: 'gnutls_record_send', fileOffset: 0x9450n }] },
  ]);
  const byKey = new Map(sites.map((s) => [`${s.func}:${s.pageOffset.toString(16)}`, s.file]));
  assert.equal(byKey.get(`${func('SSL_read')}:120`), 0);
  assert.equal(byKey.get(`${func('SSL_read')}:130`), 1);
  assert.equal(byKey.get(`${func('SSL_write')}:450`), K.FILE_AMBIGUOUS);
  assert.equal(byKey.get(`${func('gnutls_record_send')}:450`), 2);
  assert.equal(sites.length, 4);
  assert.deepEqual(ambiguous, ['SSL_write in /lib/libssl.so.3 and /usr/bin/node']);
});
