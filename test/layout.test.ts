import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EVENT_LAYOUT } from '../src/events/layout.js';
import { PROBED_FUNCTIONS, TLS_FUNCTIONS } from '../src/events/types.js';
import { bpfObjectPath, loadAddon } from '../src/native/binding.js';

test('the TypeScript event layout equals what the addon was compiled with (bpf/tlstap.h)', () => {
  const native = loadAddon().layout();
  assert.deepEqual(EVENT_LAYOUT.data, native.data);
  assert.deepEqual(EVENT_LAYOUT.conn, native.conn);
  assert.deepEqual(EVENT_LAYOUT.counters, native.counters);
  assert.deepEqual(EVENT_LAYOUT.constants, native.constants);
  assert.equal(PROBED_FUNCTIONS.length, native.constants.FUNC_COUNT);
  assert.equal(TLS_FUNCTIONS.length, native.constants.FUNC_DATA_COUNT);
});

/** Byte offsets of a struct's members as the BPF compiler laid them out (nested structs flattened). */
function btfMembers(dump: string, name: string): { size: number; members: Map<string, number> } {
  const structs = new Map<string, { id: string; size: number; members: [string, string, number][] }>();
  for (const m of dump.matchAll(/^\[(\d+)\] STRUCT '(\w*)' size=(\d+) vlen=\d+\n((?:\t'.*\n)*)/gm)) {
    const members = [...m[4]!.matchAll(/\t'(\w+)' type_id=(\d+) bits_offset=(\d+)/g)].map(
      (x) => [x[1]!, x[2]!, Number(x[3]) / 8] as [string, string, number],
    );
    structs.set(m[2]!, { id: m[1]!, size: Number(m[3]), members });
  }
  const byId = new Map([...structs.values()].map((s) => [s.id, s]));
  const root = structs.get(name);
  assert.ok(root, `struct ${name} is in the object's BTF`);
  const members = new Map<string, number>();
  const walk = (s: typeof root, base: number) => {
    for (const [member, typeId, offset] of s.members) {
      const nested = byId.get(typeId);
      if (nested && member === 'h') walk(nested, base + offset);
      else members.set(member, base + offset);
    }
  };
  walk(root, 0);
  return { size: root.size, members };
}

test('the BPF object carries the same record layouts in its BTF', () => {
  let dump: string;
  try {
    dump = execFileSync('bpftool', ['btf', 'dump', 'file', bpfObjectPath()], { encoding: 'utf8' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('bpftool is missing: apt-get install bpftool');
    throw err;
  }
  for (const [struct, layout] of [
    ['tlstap_data_event', EVENT_LAYOUT.data],
    ['tlstap_conn_event', EVENT_LAYOUT.conn],
  ] as const) {
    const btf = btfMembers(dump, struct);
    assert.equal(btf.size, layout.size, `sizeof(struct ${struct})`);
    const fields = layout.fields as Record<string, { offset: number }>;
    for (const [member, offset] of btf.members) {
      if (member === 'pad') continue;
      assert.ok(fields[member], `${struct}.${member} is mirrored`);
      assert.equal(fields[member].offset, offset, `offset of ${struct}.${member}`);
    }
    assert.equal(btf.members.size - (btf.members.has('pad') ? 1 : 0), Object.keys(fields).length, `every mirrored field of ${struct} exists`);
  }
});

test('a recording reads when its record structs are ours and its constants keep their values; new constants do not matter', async () => {
  const { EVENT_LAYOUT, readsLayout } = await import('../src/events/layout.js');
  const copy = () => JSON.parse(JSON.stringify(EVENT_LAYOUT)) as { data: { size: number }; constants: Record<string, number> };
  assert.ok(readsLayout(copy()));
  const older = copy();
  delete older.constants.REASON_NO_BTF;
  assert.ok(readsLayout(older), 'a recording from before a constant was added');
  const renumbered = copy();
  renumbered.constants.REASON_FREE = 9;
  assert.ok(!readsLayout(renumbered));
  const bigger = copy();
  bigger.data.size += 8;
  assert.ok(!readsLayout(bigger));
  assert.ok(!readsLayout(undefined));
});

test('the BPF object holds no atomic fetch-and-add: kernels before 5.12 refuse one even in code they never run', (t) => {
  const objdump = ['llvm-objdump', 'llvm-objdump-14', 'llvm-objdump-15', 'llvm-objdump-16'].find((tool) => {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (objdump === undefined) {
    if (process.env.CI === 'true') assert.fail('llvm-objdump is missing (scripts/setup.sh installs llvm)');
    t.skip('llvm-objdump is missing: apt install llvm');
    return;
  }
  const text = execFileSync(objdump, ['-d', bpfObjectPath()], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.match(text, /probe_return/, 'the disassembly lists the programs');
  assert.match(text, /lock \*\(u32 \*\)/, 'a plain atomic add (the sequence numbers) is there');
  assert.doesNotMatch(text, /atomic_fetch|cmpxchg|xchg/, 'no fetch, exchange or compare-and-exchange');
});
