// End-to-end, as root: what a user gets from the npm package on a machine without a compiler.
// `npm pack` (its prepack builds everything), then `npm install -g` into a clean prefix with a PATH
// that holds only node, npm, sh, mount and curl, in a mount namespace where /usr/include is empty and
// the distribution's libbpf and libelf cannot be loaded; then `tlstap doctor` and a capture of curl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curlFetch } from '../src/demo/clients.js';
import { sha256OfBytes } from '../src/demo/server.js';
import { spawnDemoServer } from '../src/demo/server-process.js';
import type { DataRecord, SummaryRecord } from '../src/output/index.js';
import { packageRoot } from '../src/util/package-root.js';
import { requireRoot } from './support/privileges.js';
import { launchArgv, parseJsonl, runTlstap, startTlstap } from './support/tlstap-process.js';
import type { LaunchOptions } from './support/tlstap-process.js';

const ROOT = packageRoot();
/** Everything on PATH: no compiler, no make, no pkg-config. */
const TOOLS = ['node', 'npm', 'sh', 'mount', 'curl'];
/** Runs "$@" with /usr/include empty and the distribution's libbpf and libelf unloadable. */
const HIDE_BUILD_FILES = [
  '/bin/mount -t tmpfs none /usr/include',
  'for f in /usr/lib/*-linux-gnu/libbpf.so* /usr/lib/*-linux-gnu/libelf*.so*; do',
  '  if [ -f "$f" ] && [ ! -L "$f" ]; then /bin/mount --bind /dev/null "$f"; fi',
  'done',
  'exec "$@"',
].join('\n');
const BODY_BYTES = 1 << 20;

/** A directory of symlinks to TOOLS, to be the whole PATH. */
function toolsDir(dir: string): string {
  const bin = join(dir, 'bin-without-compilers');
  mkdirSync(bin);
  for (const tool of TOOLS) {
    const path = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    // npm's bin is a relative symlink into its package: link to the script itself.
    symlinkSync(execFileSync('readlink', ['-f', path], { encoding: 'utf8' }).trim(), join(bin, tool));
  }
  return bin;
}

/** `command...` in its own mount namespace without build files, with PATH = bin only. */
function withoutBuildFiles(bin: string, ...command: string[]): LaunchOptions {
  return { prefix: ['/usr/bin/unshare', '--mount', '/bin/sh', '-c', HIDE_BUILD_FILES, 'sh'], command, env: { PATH: bin } };
}

function payload(r: DataRecord): Buffer {
  return r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64 ?? '', 'base64');
}

test('npm pack, npm install -g without compilers or libbpf: tlstap doctor passes and captures curl byte-exact', { timeout: 600_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-install-'));
  const server = await spawnDemoServer();
  try {
    // prepack builds everything the package ships, for every architecture (scripts/prepack.sh).
    execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const arch of ['x64', 'arm64']) {
      assert.ok(files.includes(`build/bpf/${arch}/tlstap.bpf.o`), `the ${arch} BPF object is packed`);
      assert.ok(files.includes(`prebuilds/linux-${arch}/tlstap.node`), `the linux-${arch} addon is packed`);
    }
    for (const machine of ['x86_64', 'aarch64']) assert.ok(files.includes(`agent/build/${machine}/tlstap-agent`), `the ${machine} agent is packed (--remote pushes it)`);
    assert.ok(files.includes('dist/src/cli.js'));
    const unexpected = files.filter(
      (f) => !/^(bin\/tlstap\.js|dist\/src\/.*\.(js|d\.ts)|native\/(binding\.gyp|src\/.*|core\/.*)|bpf\/tlstap\.h|scripts\/install-native\.js|web\/[^/]+|README\.md|package\.json)$/.test(f) &&
        !/^(build\/bpf\/(x64|arm64)\/tlstap\.bpf\.o|prebuilds\/linux-(x64|arm64)\/tlstap\.node|agent\/build\/(x86_64|aarch64)\/tlstap-agent)$/.test(f),
    );
    assert.deepEqual(unexpected, []);

    const bin = toolsDir(dir);
    const prefix = join(dir, 'prefix');
    const install = withoutBuildFiles(bin, 'npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball);
    const [file, ...rest] = launchArgv([], install);
    const installLog = execFileSync(file!, rest, { env: { ...process.env, ...install.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const installed = join(prefix, 'lib', 'node_modules', 'tlstap');
    assert.doesNotMatch(installLog, /building the addon from source/);
    assert.equal(existsSync(join(installed, 'native', 'build')), false, 'nothing was compiled');
    // Sources are only for building from source: the installed package runs without them.
    rmSync(join(installed, 'native'), { recursive: true });
    rmSync(join(installed, 'bpf'), { recursive: true });
    assert.deepEqual(readdirSync(join(prefix, 'bin')), ['tlstap']);
    const tlstap = withoutBuildFiles(bin, join(prefix, 'bin', 'tlstap'));

    const doctor = await runTlstap(['doctor'], 60_000, tlstap);
    assert.equal(doctor.code, 0, doctor.stdout.toString() + doctor.stderr);
    const report = doctor.stdout.toString();
    assert.match(report, new RegExp(`ok +BPF object +${installed}/build/bpf/${process.arch}/tlstap\\.bpf\\.o`));
    assert.match(report, new RegExp(`ok +native addon +${installed}/prebuilds/linux-${process.arch}/tlstap\\.node`));

    const out = join(dir, 'out.jsonl');
    const capture = await startTlstap(['-f', 'jsonl', '-o', out, '--comm', 'curl'], 60_000, tlstap);
    const curl = await curlFetch(`${server.url}/bytes/${BODY_BYTES}`, { outFile: join(dir, 'body') });
    const exit = await capture.stop('SIGTERM');
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(curl.exitCode, 0, curl.stderr);
    const lines = parseJsonl<DataRecord | SummaryRecord>(readFileSync(out, 'utf8'));
    const reads = lines.filter((l): l is DataRecord => l.type === 'data' && l.pid === curl.pid && l.dir === 'read');
    const response = Buffer.concat(reads.map(payload));
    const body = response.subarray(response.indexOf('\r\n\r\n') + 4);
    assert.equal(body.length, BODY_BYTES);
    assert.equal(createHash('sha256').update(body).digest('hex'), sha256OfBytes(BODY_BYTES));
    assert.deepEqual(body, readFileSync(join(dir, 'body')));
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
