import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { TLS_FUNCTIONS } from '../src/events/types.js';
import { bpfObjectPath, loadAddon } from '../src/native/binding.js';

test('the TypeScript event layout equals what the addon was compiled with (bpf/tlstap.h)', () => {
  const native = loadAddon().layout();
  assert.equal(EVENT_LAYOUT.headerSize, native.headerSize);
  assert.deepEqual(EVENT_LAYOUT.fields, native.fields);
  assert.deepEqual(EVENT_LAYOUT.constants, native.constants);
  assert.equal(TLS_FUNCTIONS.length, native.constants.FUNC_COUNT);
});

test('the BPF object carries the same struct layout in its BTF', () => {
  // bpftool prints the struct as the BPF compiler laid it out.
  let dump: string;
  try {
    dump = execFileSync('bpftool', ['btf', 'dump', 'file', bpfObjectPath()], { encoding: 'utf8' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('bpftool is missing: apt-get install bpftool');
    throw err;
  }
  const struct = /STRUCT 'tlstap_data_event' size=(\d+) vlen=\d+\n((?:\t'.*\n)+)/.exec(dump);
  assert.ok(struct, 'struct tlstap_data_event is in the object BTF');
  assert.equal(Number(struct[1]), EVENT_LAYOUT.headerSize);
  for (const line of struct[2]!.trim().split('\n')) {
    const m = /'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    assert.ok(m, line);
    const field = (EVENT_LAYOUT.fields as Record<string, { offset: number }>)[m[1]!];
    if (m[1] === 'pad') continue;
    assert.ok(field, `field ${m[1]} is mirrored`);
    assert.equal(field.offset * 8, Number(m[2]), `offset of ${m[1]}`);
  }
});
