// tlstap-agent end to end: the static binaries, the launcher over `--remote 'sh -c'`, a local pipe,
// the arm64 build under qemu-user, and ELF symbols read through the agent equal to a local read.
import { after, before, describe, it } from 'node:test';
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ElfFile } from '../src/elf/index.js';
import type { FileView } from '../src/remote/index.js';
import { AgentConnection, AgentError, AgentGoneError, AgentView, agentBinary, localView, sayHello, startRemoteAgent } from '../src/remote/index.js';
import { Args, OP, decodeClock, encodeFrame } from '../src/remote/protocol.js';
import { RemoteBpfSession } from '../src/remote/session.js';
import { encodePlan } from '../src/remote/plan.js';
import { openRecordFile } from '../src/record/index.js';
import { BpfError } from '../src/native/binding.js';
import { PROBED_FUNCTIONS } from '../src/events/types.js';

const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const ARM64_LIBSSL = '/usr/lib/aarch64-linux-gnu/libssl.so.3';
const ARM64_BORINGSSL = '/usr/lib/aarch64-linux-gnu/android/libssl.so.0';
const QEMU = '/usr/bin/qemu-aarch64-static';
const SIZE_LIMIT = 3 * 1024 * 1024;

/** Everything the ELF reader says about a file's TLS functions and symbols, opened through a view. */
async function elfFacts(view: FileView, path: string) {
  return factsOf(await ElfFile.openFile(path, await view.openFile(path)));
}

/** The same facts read by the plain reader from this machine's file system. */
async function localFacts(path: string) {
  return factsOf(await ElfFile.open(path));
}

async function factsOf(elf: ElfFile) {
  try {
    const functions = [...(await elf.findFunctions(PROBED_FUNCTIONS))].map(([name, f]) => [name, f.fileOffset, f.version]);
    return {
      machine: elf.machineName,
      buildId: await elf.buildId(),
      needed: await elf.neededLibraries(),
      functions,
      dynsym: (await elf.symbols('dynsym')).map((s) => `${s.name}@${s.version ?? ''}=${s.address}`),
    };
  } finally {
    await elf.close();
  }
}

/** Agents started by pipeAgent; any still running when the tests end (a test failed) are killed. */
const children = new Set<ReturnType<typeof spawn>>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts an agent binary as a child (optionally under qemu) and talks to it over its stdin/stdout. */
function pipeAgent(argv: string[]) {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, connection: AgentConnection.over(child.stdin, child.stdout), exited, stderr: () => stderr };
}

describe('the agent binaries', () => {
  for (const arch of ['x86_64', 'aarch64']) {
    it(`${arch}: statically linked, stripped, under 3 MB`, (t) => {
      const path = agentBinary(arch);
      const size = statSync(path).size;
      t.diagnostic(`tlstap-agent ${arch}: ${size} bytes (${(size / 1024 / 1024).toFixed(2)} MiB; limit 3 MiB)`);
      assert.ok(size < SIZE_LIMIT, `${path} is ${size} bytes`);
      const file = execFileSync('file', ['-b', path], { encoding: 'utf8' });
      assert.match(file, arch === 'x86_64' ? /x86-64/ : /ARM aarch64/);
      assert.match(file, /statically linked/);
      assert.match(file, /stripped/);
      if (arch === 'x86_64') {
        // ldd exits 1 for a static program and says so.
        let said = '';
        try {
          said = execFileSync('ldd', [path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (err) {
          said = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
        }
        assert.match(said, /not a dynamic executable|statically linked/);
      }
    });
  }
});

describe("the agent over --remote 'sh -c'", () => {
  let dir: string;
  let agentPath: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tlstap-agent-'));
    agentPath = join(dir, 'bin', 'tlstap-agent');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is pushed when missing, kept when current, pushed again when stale; HELLO names this agent', async (t) => {
    const steps: string[] = [];
    const started = Date.now();
    const first = await startRemoteAgent({ command: 'sh -c', agentPath, onStep: (s) => steps.push(s) });
    t.diagnostic(`first start (probe, push, HELLO): ${Date.now() - started} ms`);
    assert.equal(first.pushed, true);
    assert.equal(first.target.quoting, 1);
    assert.equal(first.hello.machine, 'x86_64');
    assert.equal(first.hello.core, true);
    assert.equal(first.hello.root, '/');
    assert.equal(statSync(agentPath).mode & 0o777, 0o700);
    assert.equal(await first.connection.close(), 0);

    const again = Date.now();
    const second = await startRemoteAgent({ command: 'sh -c', agentPath });
    t.diagnostic(`second start (probe, HELLO): ${Date.now() - again} ms`);
    assert.equal(second.pushed, false);
    await second.connection.close();

    await writeFile(agentPath, '#!/bin/sh\necho stale\n');
    const third = await startRemoteAgent({ command: 'sh -c', agentPath });
    assert.equal(third.pushed, true);
    assert.equal(third.hello.selfSize, statSync(agentBinary('x86_64')).size);
    await third.connection.close();
    assert.ok(steps.some((s) => s.includes('no agent there; pushing')), steps.join('\n'));
  });

  it(`reads ${LIBSSL}'s symbols exactly as a local read does`, async (t) => {
    const { connection } = await startRemoteAgent({ command: 'sh -c', agentPath });
    try {
      const view = new AgentView(connection, 'sh -c');
      const remote = await elfFacts(view, LIBSSL);
      const local = await localFacts(LIBSSL);
      assert.deepEqual(remote, local);
      assert.ok(remote.functions.some(([name]) => name === 'SSL_write'));
      t.diagnostic(`${remote.dynsym.length} dynamic symbols, ${remote.functions.length} probed functions, build-id ${remote.buildId}`);
    } finally {
      await connection.close();
    }
  });

  it('a command that parses its argument once more (like `adb shell su -c`) gets it quoted twice', async () => {
    // adb shell joins its arguments and the device's shell parses them; su -c then runs only the first word.
    const { connection, target, hello } = await startRemoteAgent({ command: `sh -c 'eval "sh -c $*"' adb`, agentPath });
    assert.equal(target.quoting, 2);
    assert.equal(hello.machine, 'x86_64');
    await connection.close();
  });

  it('a front end killed mid-session leaves no agent running 2 s later', async () => {
    const holder = spawn(process.execPath, [fileURLToPath(new URL('./support/agent-holder.js', import.meta.url)), agentPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(holder);
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      holder.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      holder.on('exit', (code) => reject(new Error(`the holder exited with ${code} before the agent answered`)));
    });
    assert.ok(existsSync(`/proc/${pid}`), 'the agent runs');
    holder.kill('SIGKILL');
    const killed = Date.now();
    while (existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z' && Date.now() - killed < 2000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const state = existsSync(`/proc/${pid}`) ? readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] : 'gone';
    assert.ok(state === 'gone' || state === 'Z', `agent ${pid} still running (state ${state}) 2 s after its front end was killed`);
  });

  it('a command that runs no shell is refused with what to do', async () => {
    await assert.rejects(startRemoteAgent({ command: 'true', agentPath }), /cannot run a shell command through --remote 'true'/);
  });
});

describe('the agent over a local pipe', () => {
  const agent = (): ReturnType<typeof pipeAgent> => pipeAgent([agentBinary('x86_64')]);

  it('serves STAT, READDIR, READLINK, READFILE and PREAD; errors carry the errno', async () => {
    const a = agent();
    const view = new AgentView(a.connection);
    const hello = await sayHello(a.connection);
    const st = await view.stat(LIBSSL);
    const local = statSync(LIBSSL, { bigint: true });
    assert.deepEqual([st.type, st.dev, st.ino, st.size, st.mtimeNs], ['file', local.dev, local.ino, local.size, local.mtimeNs]);
    assert.equal((await view.stat('/proc/self', { follow: false })).type, 'symlink');
    assert.equal(await view.readlink('/proc/self'), String(hello.pid));
    const procs = await view.readdir('/proc');
    assert.ok(procs.some((d) => d.name === String(hello.pid) && d.type === 'dir'));
    const maps = (await view.readFile(`/proc/${hello.pid}/maps`)).toString();
    assert.match(maps, /r-xp .*tlstap-agent/);
    await assert.rejects(view.readFile(`/proc/${hello.pid}/maps`, 16), { code: 'EFBIG' });
    const head = await view.read(LIBSSL, 0, 4);
    assert.deepEqual(head, Buffer.from('\x7fELF', 'latin1'));
    assert.equal((await view.read(LIBSSL, Number(local.size) - 2, 100)).length, 2);
    await assert.rejects(view.stat('/no/such/file'), (err: unknown) => err instanceof AgentError && err.code === 'ENOENT' && /STAT \/no\/such\/file/.test(err.message));
    await assert.rejects(view.read('/usr/lib', 0, 10), { code: 'EISDIR' });
    await assert.rejects(view.stat('relative/path'), { code: 'EINVAL' });
    await assert.rejects(a.connection.request(OP.PREAD, Buffer.from([1, 2])), (err: unknown) => err instanceof AgentError && /malformed/.test(err.message));
    await assert.rejects(a.connection.request(99), /unknown request/);
    assert.equal(await a.connection.close(), null);
    assert.equal(await a.exited, 0);
  });

  it("every capture request reaches the core with its arguments decoded; the core's refusals come back as BpfErrors", async () => {
    const a = agent();
    const session = new RemoteBpfSession(a.connection);
    // The core's own checks answer (the embedded object opens without privileges, nothing is loaded);
    // a misencoded request would get EBADMSG instead.
    const refused = (op: string, code: string, text: RegExp) => (err: unknown) =>
      err instanceof BpfError && err.op === op && err.code === code && text.test(err.message);
    await assert.rejects(session.setGlobal('.rodata', 'no_such_global', Buffer.alloc(4)), refused('setGlobal', 'ENOENT', /no global no_such_global in \.rodata/));
    await assert.rejects(session.setGlobal('.rodata', 'max_call_bytes', Buffer.alloc(3)), refused('setGlobal', 'EINVAL', /max_call_bytes is 4 bytes, got 3/));
    await assert.rejects(session.setMapMaxEntries('no_such_map', 1 << 24), refused('setMapMaxEntries', 'ENOENT', /no map no_such_map/));
    await assert.rejects(session.useUprobeMulti(['no_such_program']), refused('useUprobeMulti', 'ENOENT', /no program no_such_program/));
    await assert.rejects(a.connection.request(OP.SET_AUTOLOAD, new Args().u8(1).u8(0).bytes('no_such_program').done()), /no program no_such_program/);
    await assert.rejects(session.attachUprobe('no_such_program', LIBSSL, 0x35944n, -1, false, 0x100n), refused('attachUprobe', 'ENOENT', /no program/));
    const offsets = BigUint64Array.of(1n, 2n, 3n);
    await assert.rejects(session.attachUprobeMulti('no_such_program', LIBSSL, offsets, offsets, 42, true), refused('attachUprobeMulti', 'ENOENT', /no program/));
    await assert.rejects(session.attachTracepoint('no_such_program', 'syscalls', 'sys_enter_close'), refused('attachTracepoint', 'ENOENT', /no program/));
    await assert.rejects(session.startPolling('events', () => undefined, { batchBytes: 1 << 20, timeoutMs: 20 }), refused('startPolling', 'EBUSY', /load first/));
    await assert.rejects(session.sumPercpuArray('events'), refused('sumPercpuArray', 'EINVAL', /not a per-CPU array/));
    await assert.rejects(a.connection.request(OP.ATTACH_MULTI, new Args().u32(2).u32(0).u8(0).u8(0).str16('p').u64(1n).done()), /malformed/);
    await assert.rejects(a.connection.request(OP.UPDATE_ELEM, new Args().str16('probe_sites').u32(8).u32(1).done()), /malformed/);
    await a.connection.close();
  });

  it('CLOCK gives the monotonic and wall clocks that stamp the records', async () => {
    const a = agent();
    const before = process.hrtime.bigint();
    const clock = decodeClock(await a.connection.request(OP.CLOCK));
    const after = process.hrtime.bigint();
    // process.hrtime is CLOCK_MONOTONIC too: the agent's reading lies between ours.
    assert.ok(clock.monotonicNs >= before && clock.monotonicNs <= after, `${before} <= ${clock.monotonicNs} <= ${after}`);
    const offByMs = Number(clock.realtimeNs / 1_000_000n) - Date.now();
    assert.ok(Math.abs(offByMs) < 1000, `wall clock off by ${offByMs} ms`);
    await a.connection.close();
  });

  it('many overlapping requests each get their own answer', async () => {
    const a = agent();
    const view = new AgentView(a.connection);
    const offsets = Array.from({ length: 200 }, (_, i) => i * 997);
    const remote = await Promise.all(offsets.map((o) => view.read(LIBSSL, o, 64)));
    const file = await localView().openFile(LIBSSL);
    offsets.forEach((o, i) => {
      const want = Buffer.alloc(64);
      const n = file.read(want, 0, 64, o) as number;
      assert.deepEqual(remote[i], want.subarray(0, n), `offset ${o}`);
    });
    await file.close();
    await a.connection.close();
  });

  it('ends by itself, with status 0, when its stdin closes', async () => {
    const a = agent();
    await sayHello(a.connection);
    const closed = Date.now();
    a.child.stdin.end();
    assert.equal(await a.exited, 0);
    assert.ok(Date.now() - closed < 2000);
  });

  it('ends with status 1 and says why when its input is not the protocol; pending requests learn it', async () => {
    const a = agent();
    const pending = a.connection.request(OP.HELLO, new Args().u32(1).done());
    a.child.stdin.write(encodeFrame('response', 1, Buffer.alloc(4)));
    await pending.catch(() => undefined);
    assert.equal(await a.exited, 1);
    assert.match(a.stderr(), /bad request stream: bad frame marker/);
    await assert.rejects(a.connection.request(OP.HELLO, new Args().u32(1).done()), AgentGoneError);
  });

  it('refuses a front end of another protocol version', async () => {
    const a = agent();
    await assert.rejects(a.connection.request(OP.HELLO, new Args().u32(99).done()), { code: 'EPROTONOSUPPORT' });
    await a.connection.close();
  });

  it('with --root, looks every path up under that directory', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tlstap-root-'));
    try {
      await writeFile(join(root, 'hello.txt'), 'from the root');
      const a = pipeAgent([agentBinary('x86_64'), '--root', root]);
      const view = new AgentView(a.connection);
      assert.equal((await view.readFile('/hello.txt')).toString(), 'from the root');
      assert.equal((await sayHello(a.connection)).root, root);
      await assert.rejects(view.stat(LIBSSL), { code: 'ENOENT' });
      await a.connection.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('the arm64 agent under qemu-user', () => {
  it('reads arm64 OpenSSL and BoringSSL exactly as a local read does', async (t) => {
    for (const path of [QEMU, ARM64_LIBSSL, ARM64_BORINGSSL]) {
      assert.ok(existsSync(path), `${path} is missing: run \`bash scripts/setup.sh\` (qemu-user-static, libssl3:arm64, android-libboringssl:arm64)`);
    }
    const a = pipeAgent([QEMU, agentBinary('aarch64')]);
    try {
      const hello = await sayHello(a.connection);
      assert.equal(hello.machine, 'aarch64');
      const view = new AgentView(a.connection, 'qemu-aarch64');
      for (const path of [ARM64_LIBSSL, ARM64_BORINGSSL]) {
        const remote = await elfFacts(view, path);
        assert.equal(remote.machine, 'aarch64');
        assert.deepEqual(remote, await localFacts(path));
        t.diagnostic(`${path}: ${remote.functions.map(([n, off]) => `${n}@0x${(off as bigint).toString(16)}`).join(' ')}`);
      }
    } finally {
      await a.connection.close();
    }
    assert.equal(await a.exited, 0);
  });
});

describe('recording on the device alone, from a plan', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tlstap-plan-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const header = {
    tlstapVersion: '0.1.0',
    layout: { version: 1 },
    littleEndian: true,
    files: [LIBSSL],
    host: { kernel: 'k', arch: 'x64', hostname: 'device' },
    settings: { maxCallBytes: 1048576 },
  };

  /** Runs the agent on a plan; resolves with its exit code and stderr. */
  async function record(planBytes: Buffer, name: string, args: string[] = ['--duration', '1'], signalAfterMs?: number) {
    const plan = join(dir, `${name}.plan`);
    await writeFile(plan, planBytes);
    const out = join(dir, `${name}.tlstap`);
    const child = spawn(agentBinary('x86_64'), ['--plan', plan, '--record', out, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    if (signalAfterMs !== undefined) setTimeout(() => child.kill('SIGTERM'), signalAfterMs);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { code, stderr, out };
  }

  const libsslFile = () => {
    const st = statSync(LIBSSL, { bigint: true });
    return { path: LIBSSL, stat: { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino } };
  };

  it('checks the files, writes a recording tlstap reads, stamped with the device clock, mode 0600', async () => {
    const started = Date.now();
    const { code, stderr, out } = await record(encodePlan({ header, files: [libsslFile()], requests: [{ op: OP.CLOCK }] }), 'ok');
    assert.equal(code, 0, stderr);
    assert.match(stderr, /bytes recorded; `tlstap replay/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const reader = await openRecordFile(out);
    try {
      assert.deepEqual(reader.header.files, [LIBSSL]);
      assert.deepEqual(reader.header.host, header.host);
      const created = Date.parse(reader.header.createdAt);
      assert.ok(created >= started - 1000 && created <= Date.now(), reader.header.createdAt);
      // wall = monotonic + offset: the same offset this process sees, within a second.
      const ours = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
      const diffMs = Number((BigInt(reader.header.monotonicToWallNs) - ours) / 1_000_000n);
      assert.ok(Math.abs(diffMs) < 1000, `clock offset differs by ${diffMs} ms`);
      let frames = 0;
      for await (const _ of reader.batches()) frames++;
      assert.equal(frames, 0);
      assert.deepEqual(reader.stopReason(), { kind: 'end' });
    } finally {
      await reader.close();
    }
  });

  it('stops at SIGTERM as at the end of its duration', async () => {
    const { code, out } = await record(encodePlan({ header, files: [], requests: [] }), 'signal', [], 300);
    assert.equal(code, 0);
    const reader = await openRecordFile(out);
    await reader.close();
  });

  it('refuses a plan whose files changed since, and writes nothing', async () => {
    const stale = libsslFile();
    stale.stat.size += 1n;
    const { code, stderr, out } = await record(encodePlan({ header, files: [stale], requests: [] }), 'stale');
    assert.equal(code, 1);
    assert.match(stderr, /libssl\.so\.3: changed since the plan was made .*make the plan again/);
    assert.equal(existsSync(out), false);
  });

  it('stops at the first request that fails, naming it, and writes nothing', async () => {
    const requests = [{ op: OP.CLOCK }, { op: OP.SET_MAP_MAX, args: new Args().u32(1 << 24).bytes('no_such_map').done() }];
    const { code, stderr, out } = await record(encodePlan({ header, files: [libsslFile()], requests }), 'nocore');
    assert.equal(code, 1);
    assert.match(stderr, /request 2 \(op 17\) failed: setMapMaxEntries failed: No such file or directory \(no map no_such_map\)/);
    assert.equal(existsSync(out), false);
  });

  it('refuses to overwrite a file, and a file that is not a plan', async () => {
    const plan = encodePlan({ header, files: [], requests: [] });
    await writeFile(join(dir, 'taken.tlstap'), 'precious');
    const taken = await record(plan, 'taken');
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /cannot create: it exists; choose a new name/);
    assert.equal(readFileSync(join(dir, 'taken.tlstap'), 'utf8'), 'precious');
    const notPlan = await record(Buffer.from('TLSTAPRC and more bytes'), 'notplan');
    assert.equal(notPlan.code, 1);
    assert.match(notPlan.stderr, /not a tlstap plan/);
    const damaged = Buffer.from(plan);
    damaged[damaged.length - 1]! ^= 1;
    const bad = await record(damaged, 'damaged');
    assert.match(bad.stderr, /damaged: frame CRC mismatch/);
  });
});
