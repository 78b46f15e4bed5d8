// Runs bench/bin/loadgen (bench/loadgen.c): used by the benchmark and by the end-to-end tests.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The load generator built by bench/build.sh. */
export const LOADGEN = fileURLToPath(new URL('../../bench/bin/loadgen', import.meta.url));

/** loadgen's JSON line. */
export interface LoadgenResult {
  calls: number;
  size: number;
  seconds: number;
  us_per_call: number;
  read_calls: number;
  writer_pid: number;
  reader_pid: number;
  /** The writer's and the reader's CPU seconds (user + system), handshakes included. */
  cpu_seconds: number;
}

/** Runs `loadgen ARGS` (the binary at `path`, e.g. a copy under a name of its own) and parses its JSON line. */
export function runLoadgen(args: readonly string[], path = LOADGEN): Promise<LoadgenResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', reject);
    child.once('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"calls"'));
      if (code !== 0 || !line) reject(new Error(`loadgen ${args.join(' ')} failed (exit ${code}):\n${err}`));
      else resolve(JSON.parse(line) as LoadgenResult);
    });
  });
}
