// Debian's mitmdump as a regular HTTP proxy with the test/support/mitm_dump.py addon: the
// reference view of the traffic the comparison test also captures with tlstap.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Debian's mitmdump. */
export const MITMDUMP = '/usr/bin/mitmdump';

/** One flow as mitm_dump.py writes it. */
export interface MitmFlow {
  method: string;
  url: string;
  request: MitmMessage;
  status: number | null;
  reason: string | null;
  response: MitmMessage | null;
  error: string | null;
}

/** A request or response as mitm_dump.py writes it (header bytes as latin-1, bodies base64). */
export interface MitmMessage {
  http_version: string;
  headers: [string, string][];
  trailers: [string, string][];
  content: string;
  raw: string;
}

/** A running mitmdump. */
export interface Mitmproxy {
  /** `http://127.0.0.1:PORT`, for curl -x. */
  proxy: string;
  /** The flows written so far. */
  flows(): MitmFlow[];
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Starts mitmdump (upstream certificates not checked) and resolves once it accepts connections. */
export async function startMitmproxy(): Promise<Mitmproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tlstap-mitm-'));
  const dump = join(dir, 'flows.jsonl');
  const port = await freePort();
  const child: ChildProcess = spawn(
    MITMDUMP,
    ['-q', '--listen-host', '127.0.0.1', '--listen-port', String(port), '--set', `confdir=${dir}`, '--ssl-insecure',
      '-s', `${ROOT}test/support/mitm_dump.py`, '--set', `dump_file=${dump}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  for (let i = 0; !(await canConnect(port)); i++) {
    if (child.exitCode !== null || i > 200) {
      child.kill('SIGKILL');
      throw new Error(`mitmdump did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proxy: `http://127.0.0.1:${port}`,
    flows: () => (existsSync(dump) ? readFileSync(dump, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as MitmFlow) : []),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
