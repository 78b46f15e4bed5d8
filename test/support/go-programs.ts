// The Go programs the Go tests read: built by fixtures/go/build.sh (Debian's Go) or fetched by it from
// npm (esbuild, a Go program that links crypto/tls, built by other Go releases).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PclntabLayout } from '../../src/elf/go/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Where fixtures/go/build.sh puts what it makes. */
export const GO_BUILD_DIR = `${ROOT}build/go`;

/** One Go program of the tests, and what is known about it from how it was made. */
export interface GoFixture {
  path: string;
  /** How it was obtained. */
  origin: string;
  arch: 'x86_64' | 'aarch64';
  layout: PclntabLayout;
  /** The Go release that built it; for the fixture without build info, what `strings` shows in it. */
  goVersion: string;
  /** Whether it keeps .symtab (then `go tool nm` can check the function table). */
  symbols: boolean;
  /** Whether it has a .go.buildinfo section. */
  buildInfo: boolean;
}

const npm = (spec: string): string => `${GO_BUILD_DIR}/npm/${spec.replace(/\//g, '+')}`;

/** Every Go fixture: the layouts from Go 1.16 to the newest, amd64 and arm64. */
export const GO_FIXTURES: readonly GoFixture[] = [
  { path: `${GO_BUILD_DIR}/client`, origin: 'Debian golang-go', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.19.8', symbols: true, buildInfo: true },
  { path: `${GO_BUILD_DIR}/client-stripped`, origin: 'Debian golang-go, -ldflags=-s -w', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.19.8', symbols: false, buildInfo: true },
  { path: `${GO_BUILD_DIR}/client-pie`, origin: 'Debian golang-go, -buildmode=pie', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.19.8', symbols: true, buildInfo: true },
  { path: `${GO_BUILD_DIR}/server`, origin: 'Debian golang-go', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.19.8', symbols: true, buildInfo: true },
  { path: `${GO_BUILD_DIR}/server-stripped`, origin: 'Debian golang-go, -ldflags=-s -w', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.19.8', symbols: false, buildInfo: true },
  { path: npm('esbuild-linux-64@0.11.23'), origin: 'npm esbuild-linux-64@0.11.23', arch: 'x86_64', layout: 'go1.16', goVersion: 'go1.16.3', symbols: false, buildInfo: true },
  { path: npm('esbuild-linux-64@0.13.15'), origin: 'npm esbuild-linux-64@0.13.15', arch: 'x86_64', layout: 'go1.16', goVersion: 'go1.17.2', symbols: false, buildInfo: true },
  { path: npm('esbuild-linux-64@0.14.30'), origin: 'npm esbuild-linux-64@0.14.30', arch: 'x86_64', layout: 'go1.18', goVersion: 'go1.18', symbols: false, buildInfo: true },
  { path: npm('@esbuild/linux-x64@0.17.19'), origin: 'npm @esbuild/linux-x64@0.17.19', arch: 'x86_64', layout: 'go1.20', goVersion: 'go1.20.4', symbols: false, buildInfo: true },
  { path: npm('@esbuild/linux-x64@0.24.2'), origin: 'npm @esbuild/linux-x64@0.24.2', arch: 'x86_64', layout: 'go1.20', goVersion: 'go1.23.1', symbols: false, buildInfo: true },
  { path: npm('@esbuild/linux-x64@0.28.2'), origin: 'npm @esbuild/linux-x64@0.28.2', arch: 'x86_64', layout: 'go1.20', goVersion: 'go1.26.5', symbols: false, buildInfo: false },
  { path: npm('@esbuild/linux-arm64@0.17.19'), origin: 'npm @esbuild/linux-arm64@0.17.19', arch: 'aarch64', layout: 'go1.20', goVersion: 'go1.20.4', symbols: false, buildInfo: true },
];

/** The fixture at `path` of GO_FIXTURES. */
export function goFixture(name: 'client' | 'client-stripped' | 'server' | 'server-stripped'): GoFixture {
  return GO_FIXTURES.find((f) => f.path === `${GO_BUILD_DIR}/${name}`)!;
}

/** A Go 1.19 program without crypto/tls (fixtures/go/plain); `-wait` keeps it running until stdin closes. */
export const GO_PLAIN = `${GO_BUILD_DIR}/plain-stripped`;

let built: string | undefined;

/**
 * Makes the Go fixtures (fixtures/go/build.sh; quick when they exist). Returns true if the test may go
 * on; when they cannot be made (no Go toolchain, no npm registry) it skips, or throws when CI=true.
 */
export function requireGoFixtures(t: TestContext): boolean {
  if (built === undefined) {
    const result = spawnSync('bash', [`${ROOT}fixtures/go/build.sh`], { encoding: 'utf8' });
    built = result.status === 0 && [...GO_FIXTURES.map((f) => f.path), GO_PLAIN].every((p) => existsSync(p)) ? '' : `${result.stderr}${result.error?.message ?? ''}`.trim();
  }
  if (built === '') return true;
  const why = `the Go fixtures could not be made (fixtures/go/build.sh: ${built || 'a file is missing'})`;
  if (process.env.CI === 'true') throw new Error(`${why}, and CI=true forbids skipping`);
  t.skip(why);
  return false;
}

/** Output of the Go toolchain's `go` (GOTOOLCHAIN=local: nothing is downloaded). */
export function goTool(args: readonly string[]): string {
  return execFileSync('go', [...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOCACHE: `${GO_BUILD_DIR}/cache`, GOFLAGS: '' },
  });
}

/** A running Go program of the fixtures. */
export interface RunningGoProgram {
  child: ChildProcess;
  pid: number;
  /** What it printed so far. */
  output(): string;
  /** Ends it (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts a fixture program and resolves once its output matches `ready` (10 s at most). */
export function startGoProgram(path: string, args: readonly string[], ready: RegExp): Promise<RunningGoProgram> {
  const child = spawn(path, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const exited = once(child, 'close');
  const program: RunningGoProgram = {
    child,
    pid: child.pid!,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path} did not get ready within 10 s; it printed:\n${out}`));
    }, 10_000);
    const onData = (b: Buffer) => {
      out += b.toString('utf8');
      if (!ready.test(out)) return;
      clearTimeout(timer);
      resolve(program);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Runs `fn` on a copy of `source` changed by `patch`, in a temporary directory removed afterwards. */
export async function withPatchedCopy<T>(source: string, patch: (buf: Buffer) => void, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-go-'));
  try {
    const buf = readFileSync(source);
    patch(buf);
    writeFileSync(join(dir, 'copy'), buf, { mode: 0o755 });
    return await fn(join(dir, 'copy'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Makes a Go binary's release unknowable: its build info magic and every `go1.N` text are defaced. */
export function hideGoVersion(buf: Buffer): void {
  const magic = Buffer.from('\xff Go buildinf:', 'latin1');
  for (let at = buf.indexOf(magic); at >= 0; at = buf.indexOf(magic, at + 1)) buf[at + 13] = 0x58;
  const text = Buffer.from('go1.', 'latin1');
  for (let at = buf.indexOf(text); at >= 0; at = buf.indexOf(text, at + 1)) buf[at + 1] = 0x58;
}
