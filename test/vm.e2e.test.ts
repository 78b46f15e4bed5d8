// End-to-end on kernels other than the host's: Debian bookworm's own 6.1 kernel (no uprobe_multi, so
// one perf-event probe per function) for amd64 and for arm64, booted under QEMU by scripts/vm-test.sh
// with a root file system of Debian packages. The tarball `npm pack` makes is installed on the host
// and shared with the guest; inside, openssl s_server serves a random file, curl fetches it over
// HTTPS while tlstap captures, and the host compares the plaintext tlstap saw with the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/package-root.js';
import { requireRoot } from './support/privileges.js';

const ROOT = packageRoot();
const ARCHES = {
  amd64: { qemu: 'qemu-system-x86_64', uname: 'x86_64', triplet: 'x86_64-linux-gnu' },
  arm64: { qemu: 'qemu-system-aarch64', uname: 'aarch64', triplet: 'aarch64-linux-gnu' },
} as const;
/** Host tools the script needs besides QEMU (scripts/setup.sh installs them). */
const TOOLS = ['mmdebstrap', 'cpio', 'depmod', 'openssl', 'npm'];
const SERVED_BYTES = 1 << 20;
/** A cold run (image built from Debian packages, then emulated) takes minutes; a hung guest is cut by the script. */
const TIMEOUT_MS = 30 * 60_000;

/** What scripts/vm/check.js wrote (the figures this test asserts on). */
interface VmResult {
  kernel: string;
  node: string;
  accel: string;
  curl_exit: number;
  tlstap_exit: number;
  served: { bytes: number; sha256: string };
  curl_saved: { bytes: number; sha256: string };
  curl_read: { calls: number; funcs: string[]; files: string[]; truncated: number; bytes: number; sha256: string };
  perf_events: number;
  uprobe_multi_symbols: number;
  summary?: { events_dropped: number };
  /** arm64: the agent alone in the guest, driven by this machine's front end (scripts/vm/agent-drive.js). */
  agent?: {
    start_ms: number;
    curl_exit: number;
    tlstap_exit: number;
    curl_saved: { bytes: number; sha256: string };
    curl_read: { calls: number; files: string[]; truncated: number; bytes: number; sha256: string };
    summary?: { events_dropped: number };
  };
}

function missingTools(qemu: string): string[] {
  return [qemu, ...TOOLS].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

/** Runs scripts/vm-test.sh, its output passed through to ours; resolves with its exit code. */
function vmTest(args: string[]): Promise<number | null> {
  const child = spawn('bash', [join(ROOT, 'scripts', 'vm-test.sh'), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve) => child.once('close', (code) => resolve(code)));
}

let tarball: string | undefined;
/** The npm package of this tree, packed once (the tree is built: scripts/setup.sh ran `npm run build`). */
function packOnce(dir: string): string {
  if (tarball === undefined) {
    execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  }
  return tarball;
}

const packDir = mkdtempSync(join(tmpdir(), 'tlstap-vm-pack-'));

for (const [arch, facts] of Object.entries(ARCHES)) {
  test(`Debian's 6.1 kernel on ${arch} (QEMU): tlstap from the npm package captures curl's 1 MiB download byte-exact`, { timeout: TIMEOUT_MS }, async (t) => {
    if (!requireRoot(t)) return;
    const missing = missingTools(facts.qemu);
    if (missing.length > 0) {
      const reason = `needs ${missing.join(', ')} (bash scripts/setup.sh installs them)`;
      if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true forbids skipping`);
      t.skip(reason);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), `tlstap-vm-${arch}-`));
    let passed = false;
    try {
      const served = randomBytes(SERVED_BYTES);
      const file = join(dir, 'served.bin');
      writeFileSync(file, served);
      const share = join(dir, 'share');
      const code = await vmTest([arch, '--tlstap', packOnce(packDir), '--file', file, '--out', share]);
      assert.equal(code, 0, `scripts/vm-test.sh ${arch} failed: its output is above`);
      const result = JSON.parse(readFileSync(join(share, 'out', 'result.json'), 'utf8')) as VmResult;

      const sha256 = createHash('sha256').update(served).digest('hex');
      assert.match(result.kernel, new RegExp(`^Linux 6\\.1\\.\\d+-\\d+-${arch} ${facts.uname}$`), 'the guest ran Debian 6.1');
      assert.equal(result.served.sha256, sha256, 'the guest served our file');
      assert.equal(result.curl_exit, 0);
      assert.equal(result.curl_saved.sha256, sha256, 'curl fetched it whole');
      if (arch === 'arm64' && result.tlstap_exit > 128 && result.summary !== undefined) {
        // Open defect (scripts/vm/check.js): a death by signal at exit, after the outputs were finished.
        t.diagnostic(`KNOWN DEFECT: tlstap died by signal ${result.tlstap_exit - 128} at exit on arm64, after finishing its outputs`);
      } else {
        assert.equal(result.tlstap_exit, 0);
      }
      assert.equal(result.curl_read.bytes, SERVED_BYTES);
      assert.equal(result.curl_read.sha256, sha256, "the plaintext of curl's SSL_read calls is the served file");
      assert.deepEqual(result.curl_read.files, [`/usr/lib/${facts.triplet}/libssl.so.3`]);
      assert.equal(result.curl_read.truncated, 0);
      assert.equal(result.summary?.events_dropped, 0);
      // 6.1 has no uprobe_multi: the probes are perf events, one per function entry and return.
      assert.equal(result.uprobe_multi_symbols, 0);
      assert.ok(result.perf_events >= 2 * 4, `perf-event fds of tlstap: ${result.perf_events}`);
      if (arch === 'arm64') {
        // Only the arm64 agent ran in the guest; the x86_64 front end here drove it over a TCP shell pipe.
        const agent = result.agent;
        assert.ok(agent, 'the agent check ran');
        console.log(`# arm64 agent driven from the host: attached ${agent.start_ms} ms after the command (push included, TCG)`);
        assert.equal(agent.curl_exit, 0);
        assert.equal(agent.curl_saved.sha256, sha256);
        assert.equal(agent.tlstap_exit, 0, 'the front end stopped the remote capture cleanly');
        assert.equal(agent.curl_read.bytes, SERVED_BYTES);
        assert.equal(agent.curl_read.sha256, sha256, "the agent's capture of curl:arm64's reads is the served file");
        assert.deepEqual(agent.curl_read.files, [`/usr/lib/${facts.triplet}/libssl.so.3`]);
        assert.equal(agent.summary?.events_dropped, 0);
      }
      passed = true;
    } finally {
      // A failure keeps the guest's output (serial log, tlstap's stderr, the capture) for a look.
      if (passed) rmSync(dir, { recursive: true, force: true });
      else t.diagnostic(`kept ${dir}/share/out`);
    }
  });
}

test.after(() => rmSync(packDir, { recursive: true, force: true }));
