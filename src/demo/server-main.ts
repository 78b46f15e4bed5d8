// Runs the demo server as its own process, so its TLS never mixes with the tracer's.
// Prints one JSON line {"url","port","host","certPath","pid"} on stdout once listening, then
// serves until SIGTERM/SIGINT, or until stdin ends when stdin is a pipe (the parent went away).
//   node dist/src/demo/server-main.js [--host 127.0.0.1] [--port 0] [--log]
import { fstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startDemoServer } from './server.js';

/** Parses argv, starts the server and returns once it is listening. */
async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      log: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const port = Number(values.port);
  const server = await startDemoServer({ host: values.host, port });
  if (values.log) {
    // Requests are recorded after their body arrives; report each one on stderr as it lands.
    const push = server.requests.push.bind(server.requests);
    server.requests.push = (...items) => {
      for (const r of items) {
        const size = `${r.body.length} body bytes, client port ${r.remotePort}`;
        process.stderr.write(`demo-server: ${r.method} ${r.path} (${size})\n`);
      }
      return push(...items);
    };
  }

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`demo-server: close failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
  // Only a pipe or socket says something by ending; /dev/null would end at once.
  const stdin = fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }

  const { url, host, certPath } = server;
  const line = JSON.stringify({ url, port: server.port, host, certPath, pid: process.pid });
  process.stdout.write(`${line}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`demo-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
