// Runs the tlstap CLI (dist/src/cli.js) as a real process, the way a user does.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** A running tlstap whose probes are live. */
export interface TlstapProcess {
  child: ChildProcess;
  stdout(): Buffer;
  stderr(): string;
  /** Sends `signal` (default SIGINT) and resolves when tlstap has exited. */
  stop(signal?: NodeJS.Signals): Promise<TlstapExit>;
  exited: Promise<TlstapExit>;
}

/** How tlstap ended. */
export interface TlstapExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** How to run tlstap: the command before its arguments, and its environment. */
export interface TlstapCommand {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
}

/** This tree's compiled CLI, run by this node. */
const LOCAL: TlstapCommand = { argv: [process.execPath, CLI] };

/** Starts `tlstap ARGS` and resolves once it says its probes are attached. */
export function startTlstap(args: readonly string[], timeoutMs = 30_000, command: TlstapCommand = LOCAL): Promise<TlstapProcess> {
  const [file, ...before] = command.argv;
  const child = spawn(file!, [...before, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: command.env ?? process.env });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.setEncoding('utf8');
  const exited = new Promise<TlstapExit>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tlstap did not attach within ${timeoutMs} ms; stderr:\n${err}`));
    }, timeoutMs);
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`tlstap exited before attaching (code ${e.code}); stderr:\n${e.stderr}`));
    });
    child.stderr!.on('data', (s: string) => {
      err += s;
      if (!/capturing \(/.test(err)) return;
      clearTimeout(timer);
      resolve({
        child,
        stdout: () => Buffer.concat(out),
        stderr: () => err,
        exited,
        stop: (signal = 'SIGINT') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
  });
}

/** Runs `tlstap ARGS` to completion. */
export async function runTlstap(args: readonly string[], timeoutMs = 60_000, command: TlstapCommand = LOCAL): Promise<TlstapExit> {
  const [file, ...before] = command.argv;
  const child = spawn(file!, [...before, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: command.env ?? process.env });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

/** Parses JSON lines. */
export function parseJsonl<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

/** What a capture around some client activity produced. */
export interface CaptureRun {
  /** The -o file's content. */
  out: string;
  exit: TlstapExit;
}

/**
 * Runs `fn` while `tlstap ARGS -o FILE` captures; stops it with SIGINT, checks it exited 0, and
 * returns what it wrote.
 */
export async function captureWhile(args: readonly string[], fn: () => Promise<void>): Promise<CaptureRun> {
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-e2e-'));
  try {
    const file = join(dir, 'out');
    const tlstap = await startTlstap([...args, '-o', file]);
    let exit: TlstapExit;
    try {
      await fn();
    } finally {
      exit = await tlstap.stop('SIGINT');
    }
    if (exit.code !== 0) throw new Error(`tlstap exited with ${exit.code} (signal ${exit.signal}):\n${exit.stderr}`);
    return { out: readFileSync(file, 'utf8'), exit };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
