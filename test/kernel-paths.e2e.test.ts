// End-to-end, as root: tlstap on kernels that lack what this one has. Per-syscall tracepoints and
// kernel BTF are hidden for real (a mount namespace of tlstap's own); attach cookies and
// fetch-and-add (5.15/5.12) cannot be hidden, so a switch makes the loader take the old path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionRecord, DataRecord, SummaryRecord } from '../src/output/index.js';
import { curlFetch } from '../src/demo/clients.js';
import { sha256OfBytes } from '../src/demo/server.js';
import { spawnDemoServer } from '../src/demo/server-process.js';
import { startNginx } from './support/nginx.js';
import { requireRoot } from './support/privileges.js';
import { captureWhile, parseJsonl } from './support/tlstap-process.js';
import type { LaunchOptions } from './support/tlstap-process.js';

type Line = DataRecord | ConnectionRecord | SummaryRecord;

/** Runs tlstap in a mount namespace where each of `dirs` is covered by an empty tmpfs. */
function hiding(...dirs: string[]): LaunchOptions {
  const script = 'for d in "$TLSTAP_HIDE"; do [ -d "$d" ] || continue; mount -t tmpfs tlstap-hidden "$d" || exit 97; done; exec "$@"';
  return { prefix: ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script.replace('"$TLSTAP_HIDE"', dirs.join(' ')), 'sh'] };
}

const NO_SYSCALL_TRACEPOINTS = hiding('/sys/kernel/tracing/events/syscalls', '/sys/kernel/debug/tracing/events/syscalls');
const NO_KERNEL_BTF = hiding('/sys/kernel/btf');
const NO_ATTACH_COOKIES: LaunchOptions = { env: { TLSTAP_NO_ATTACH_COOKIES: '1' } };

/** The names of the BPF programs a process holds (its fds' prog_id, named by bpftool). */
function programsOf(pid: number): string[] {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    const match = /^prog_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    if (match) ids.add(Number(match[1]));
  }
  const r = spawnSync('bpftool', ['prog', 'list', '-j'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { id: number; name?: string }[]).filter((p) => ids.has(p.id)).map((p) => p.name ?? '');
}

/** curl fetches from nginx under capture; every curl record must carry the fd and the addresses nginx logged. */
async function curlRecordsMatchNginx(launch: LaunchOptions, duringCapture: (tlstapPid: number) => void = () => undefined): Promise<DataRecord[]> {
  const nginx = await startNginx({ files: { 'a.txt': 'alpha file body\n' } });
  try {
    let curlPid = 0;
    const run = await captureWhile(['-f', 'jsonl', '--comm', 'curl'], async (tlstap) => {
      duringCapture(tlstap.child.pid!);
      const curl = await curlFetch(`${nginx.url}/a.txt`);
      assert.equal(curl.exitCode, 0, curl.stderr);
      curlPid = curl.pid;
    }, launch);
    const lines = parseJsonl<Line>(run.out);
    const clientPort = Number(nginx.accessLog()[0]?.split(' ')[1]);
    assert.ok(clientPort > 0, 'nginx logged the request');
    const records = lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === curlPid);
    assert.ok(records.length >= 2, `curl records: ${records.length}`);
    assert.match(records.find((r) => r.dir === 'write')?.text ?? '', /^GET \/a\.txt HTTP\/1\.1\r\n/);
    for (const r of records) {
      assert.ok((r.conn?.fd ?? -1) >= 0, 'the fd is known');
      assert.deepEqual(r.conn?.remote, { ip: '127.0.0.1', port: nginx.port });
      assert.deepEqual(r.conn?.local, { ip: '127.0.0.1', port: clientPort });
    }
    return records;
  } finally {
    await nginx.stop();
  }
}

test('without per-syscall tracepoints (events/syscalls hidden, as on Android GKI): raw_syscalls give every call its fd and addresses', async (t) => {
  if (!requireRoot(t)) return;
  await curlRecordsMatchNginx(NO_SYSCALL_TRACEPOINTS, (pid) => {
    const programs = programsOf(pid);
    assert.ok(programs.includes('raw_syscall'), 'the raw_syscalls hook is loaded');
    assert.ok(!programs.includes('syscall_fd_io'), 'no per-syscall hook is loaded');
  });
});

test('without attach cookies (the path of kernels before 5.15): one entry program per function, and each record still names its file', async (t) => {
  if (!requireRoot(t)) return;
  const records = await curlRecordsMatchNginx(NO_ATTACH_COOKIES, (pid) => {
    const programs = programsOf(pid);
    assert.ok(programs.includes('probe_enter_1'), 'the SSL_write entry program is loaded');
    assert.ok(!programs.includes('probe_enter'), 'the cookie entry program is not');
  });
  for (const r of records) assert.match(r.file ?? '', /\/libssl\.so\.3$/, 'the file is curl\'s libssl');
});

/** curl fetches 5 MiB under capture; returns curl's records and the capture's lines after checking every byte. */
async function fiveMibByteExact(args: string[], launch: LaunchOptions): Promise<{ records: DataRecord[]; lines: Line[] }> {
  const FIVE_MIB = 5 * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-e2e-'));
  const server = await spawnDemoServer();
  try {
    let curlPid = 0;
    const run = await captureWhile(['-f', 'jsonl', '--comm', 'curl', ...args], async () => {
      const curl = await curlFetch(`${server.url}/bytes/${FIVE_MIB}`, { outFile: join(dir, 'body') });
      assert.equal(curl.exitCode, 0, curl.stderr);
      curlPid = curl.pid;
    }, launch);
    const lines = parseJsonl<Line>(run.out);
    const records = lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === curlPid);
    const payload = (r: DataRecord) => (r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64 ?? '', 'base64'));
    const response = Buffer.concat(records.filter((r) => r.dir === 'read').map(payload));
    const body = response.subarray(response.indexOf('\r\n\r\n') + 4);
    assert.equal(body.length, FIVE_MIB);
    assert.equal(createHash('sha256').update(body).digest('hex'), sha256OfBytes(FIVE_MIB));
    const summary = lines.at(-1) as SummaryRecord;
    assert.deepEqual([summary.events_dropped, summary.bytes_dropped, summary.bytes_truncated], [0, 0, 0]);
    return { records, lines };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('without kernel BTF (/sys/kernel/btf hidden): every byte of a 5 MiB body; only the addresses are unknown, and the record says why', async (t) => {
  if (!requireRoot(t)) return;
  const { records, lines } = await fiveMibByteExact([], NO_KERNEL_BTF);
  for (const r of records) {
    assert.equal(r.conn?.local, null);
    assert.ok((r.conn?.fd ?? -1) >= 0, 'the fd still comes from the syscalls');
  }
  const open = lines.find((l): l is ConnectionRecord => l.type === 'open' && l.pid === records[0]!.pid);
  assert.match(open?.conn.unknown ?? '', /no kernel BTF/);
});

test('--btf FILE where /sys/kernel/btf is hidden: the addresses are back', async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-btf-'));
  try {
    const btf = join(dir, 'vmlinux.btf');
    copyFileSync('/sys/kernel/btf/vmlinux', btf);
    const { records } = await fiveMibByteExact(['--btf', btf], NO_KERNEL_BTF);
    for (const r of records) assert.equal(r.conn?.local?.ip, '127.0.0.1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 5.8 kernel without BTF or syscall tracepoints (everything old at once): every byte of a 5 MiB body', async (t) => {
  if (!requireRoot(t)) return;
  const launch = hiding('/sys/kernel/btf', '/sys/kernel/tracing/events/syscalls', '/sys/kernel/debug/tracing/events/syscalls');
  const { records } = await fiveMibByteExact([], { ...launch, ...NO_ATTACH_COOKIES });
  assert.ok(records.every((r) => r.file?.endsWith('/libssl.so.3')));
});
