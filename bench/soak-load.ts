// The soak load: one process (thread name "tlstapsoak", for --comm) with a local TLS server and
// CONNS concurrent client connections; each client sends a SIZE-byte message every INTERVAL ms
// and the server echoes it, so each message is four traced calls (client SSL_write, server
// SSL_read, server SSL_write, client SSL_read) in the OpenSSL linked into node.
//
//   node dist/bench/soak-load.js [--conns 1000] [--interval-ms 500] [--size 1024] [--seconds 600]
// Prints {"ready":true,...} once every connection is up, and a JSON totals line at the end.
import { connect, createServer } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { createSelfSignedCert } from '../src/demo/cert.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

const conns = flag('--conns', 1000);
const intervalMs = flag('--interval-ms', 500);
const size = flag('--size', 1024);
const seconds = flag('--seconds', 600);

process.title = 'tlstapsoak';
const cert = await createSelfSignedCert();
const server = createServer({ cert: cert.cert, key: cert.key }, (socket) => {
  socket.on('data', (d: Buffer) => socket.write(d));
  socket.on('error', () => undefined);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;

const message = Buffer.alloc(size, 'x');
let echoed = 0;
let failed = 0;
const clients: TLSSocket[] = [];
const timers: NodeJS.Timeout[] = [];
for (let i = 0; i < conns; i++) {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(s));
    s.once('error', reject);
  });
  socket.on('data', (d: Buffer) => (echoed += d.length));
  socket.on('error', () => failed++);
  clients.push(socket);
}
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, conns, port })}\n`);

// Spread the clients over the interval so the load is even.
clients.forEach((socket, i) => {
  timers.push(
    setTimeout(() => {
      socket.write(message);
      timers.push(setInterval(() => socket.write(message), intervalMs));
    }, (i * intervalMs) / conns),
  );
});

await new Promise((r) => setTimeout(r, seconds * 1000));
for (const t of timers) clearTimeout(t);
for (const s of clients) s.destroy();
server.close();
await cert.remove();
process.stdout.write(`${JSON.stringify({ done: true, echoedBytes: echoed, messages: Math.round(echoed / size), failed })}\n`);
process.exit(0);
