// Runs the demo server (src/demo/server-main.ts) in a child process, so the test runner's own
// TLS never shows up next to the server's.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Where the compiled server entry point lives (server-main.js beside this file). */
export const SERVER_MAIN = fileURLToPath(new URL('./server-main.js', import.meta.url));

/** How a process ended. */
export interface ExitStatus {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** A demo server running in its own process. */
export interface DemoServerProcess {
  url: string;
  port: number;
  host: string;
  certPath: string;
  /** The server process's pid (comm "node"). */
  pid: number;
  child: ChildProcess;
  /** Everything the server wrote on stderr so far. */
  stderr(): string;
  /** Resolves once the process has exited, however that came about. */
  exited: Promise<ExitStatus>;
  /** Sends SIGTERM and resolves once the process has exited. */
  stop(): Promise<ExitStatus>;
}

/** Options for spawnDemoServer. */
export interface SpawnDemoServerOptions {
  host?: string;
  port?: number;
  /** Log each request on the server's stderr. */
  log?: boolean;
  /** Give up if the JSON line has not come after this long; default 15 s. */
  timeoutMs?: number;
}

/** Starts server-main in a child process and resolves with its JSON line once it listens. */
export function spawnDemoServer(opts: SpawnDemoServerOptions = {}): Promise<DemoServerProcess> {
  const args = [SERVER_MAIN, '--host', opts.host ?? '127.0.0.1', '--port', String(opts.port ?? 0)];
  if (opts.log) args.push('--log');
  // stdin is a pipe: if this process dies, the pipe ends and the server stops by itself.
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (err += s));
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
  });

  return new Promise((resolve, reject) => {
    let out = '';
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`demo server did not start: ${why}${err ? `; stderr: ${err.trim()}` : ''}`));
    };
    const limit = opts.timeoutMs ?? 15_000;
    const timer = setTimeout(() => fail('timed out waiting for its JSON line'), limit);
    child.once('error', (e) => fail(e.message));
    void exited.then((s) => fail(`exited early (code ${s.exitCode}, signal ${s.signal})`));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl < 0 || settled) return;
      settled = true;
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      let info: { url: string; port: number; host: string; certPath: string };
      try {
        info = JSON.parse(out.slice(0, nl)) as typeof info;
      } catch {
        settled = false;
        fail(`bad first line ${JSON.stringify(out.slice(0, nl))}`);
        return;
      }
      resolve({
        ...info,
        pid: child.pid ?? -1,
        child,
        stderr: () => err,
        exited,
        stop: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          return exited;
        },
      });
    });
  });
}
