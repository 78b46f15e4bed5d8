import type { Writable } from 'node:stream';
import { existsSync } from 'node:fs';
import { curlFetch, nodeFetch } from '../demo/clients.js';
import type { ClientResult } from '../demo/clients.js';
import { spawnDemoServer } from '../demo/server-process.js';
import { missingCapabilityMessage } from '../doctor/index.js';
import type { TlsCall } from '../events/types.js';
import { createFormatSink, formatSummary } from '../output/index.js';
import { dedupeTargets, fileTarget, systemTargets } from '../targets/index.js';
import { LiveCapture, liveContext } from './capture.js';
import { CliError } from './errors.js';
import type { CaptureOptions } from './options.js';

/** A client the demo drives, and what tlstap saw of it. */
interface DrivenClient {
  name: string;
  run: (url: string, onSpawn: (pid: number) => void) => Promise<ClientResult>;
  path: string;
  pid?: number;
  wrote: number;
  read: number;
}

function curlPath(): string | undefined {
  return ['/usr/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p));
}

/**
 * `tlstap demo`: a local HTTPS server with a throwaway certificate, real clients fetching
 * from it, and tlstap showing their plaintext. Exits 0 when every client was seen both ways.
 */
export async function runDemo(opts: Pick<CaptureOptions, 'maxBytes' | 'ringBuffer'>, stdout: Writable = process.stdout, stderr: Writable = process.stderr): Promise<void> {
  const missing = missingCapabilityMessage();
  if (missing) throw new CliError(missing);

  const clients: DrivenClient[] = [];
  const curl = curlPath();
  if (curl) clients.push({ name: 'curl', path: `${curl} --http1.1 URL/hello`, run: (url, onSpawn) => curlFetch(`${url}/hello`, { onSpawn }), wrote: 0, read: 0 });
  else stderr.write('tlstap demo: curl is not installed; driving only Node\'s https client (apt-get install curl for both)\n');
  clients.push({ name: 'node', path: `${process.execPath} https.get(URL/json)`, run: (url, onSpawn) => nodeFetch(`${url}/json`, { onSpawn }), wrote: 0, read: 0 });

  // Node carries OpenSSL in its own executable: probe it beside the system libraries.
  const targets = dedupeTargets([...(await systemTargets()), await fileTarget(process.execPath, 'executable')]).filter((t) => t.functions.length > 0);
  const ctx = liveContext(targets);
  const byPid = new Map<number, DrivenClient>();
  const sink = createFormatSink('text', stdout, ctx, { color: (stdout as NodeJS.WriteStream).isTTY === true && !process.env.NO_COLOR });
  const keep = (call: TlsCall): boolean => {
    const client = byPid.get(call.pid);
    if (!client) return false;
    if (call.dir === 'write') client.wrote += call.data.length;
    else client.read += call.data.length;
    return true;
  };

  const server = await spawnDemoServer();
  let capture: LiveCapture | undefined;
  try {
    // Only the clients' connections: the demo server (node too) and other programs stay out.
    capture = await LiveCapture.start({ targets, sinks: [sink], keepCall: keep, keepConnection: (c) => byPid.has(c.pid) }, opts);
    stderr.write(`tlstap demo: server at ${server.url}; probing ${targets.map((t) => t.displayPath).join(', ')}\n`);
    for (const client of clients) {
      stderr.write(`tlstap demo: running ${client.path.replace(/URL/g, server.url)}\n`);
      const result = await client.run(server.url, (pid) => {
        client.pid = pid;
        byPid.set(pid, client);
      });
      if (result.exitCode !== 0) stderr.write(`tlstap demo: ${client.name} exited with ${result.exitCode}: ${result.stderr.trim()}\n`);
    }
    const stats = await capture.stop();
    await capture.close();
    capture = undefined;
    stderr.write(`${formatSummary(stats)}\n`);
  } finally {
    if (capture) {
      await capture.stop().catch(() => undefined);
      await capture.close();
    }
    await server.stop();
  }

  const unseen = clients.filter((c) => c.wrote === 0 || c.read === 0);
  for (const c of clients) stderr.write(`tlstap demo: ${c.name} (pid ${c.pid ?? '?'}): ${c.wrote} bytes sent, ${c.read} bytes received\n`);
  if (unseen.length > 0) {
    throw new CliError(`demo: no plaintext seen from ${unseen.map((c) => c.name).join(', ')}`, 'run `tlstap doctor` to check uprobe support');
  }
}
