#!/usr/bin/env node
// The --remote command of the arm64 agent check (scripts/vm-test.sh): reaches the guest's shell
// listener (busybox nc -ll -e, running scripts/vm/agent-shell.sh, through QEMU's hostfwd) and runs its last
// argument there as a shell command, with this process's stdin and stdout as the command's: a byte
// pipe like `ssh root@host CMD`. Stdin's end is passed on (a TCP half-close), so `cat > FILE` ends.
// Usage: node scripts/vm/tcp-shell.js HOST:PORT 'shell command'
import { connect } from 'node:net';

const [address, command] = process.argv.slice(2);
const at = address?.lastIndexOf(':') ?? -1;
if (!address || at < 0 || command === undefined || command.includes('\n')) {
  console.error("usage: node scripts/vm/tcp-shell.js HOST:PORT 'shell command' (one line)");
  process.exit(2);
}
const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)), allowHalfOpen: true });
socket.on('error', (err) => {
  console.error(`tcp-shell: ${address}: ${err.message}`);
  process.exit(255);
});
socket.on('connect', () => {
  socket.write(`${command}\n`);
  process.stdin.pipe(socket);
  socket.pipe(process.stdout);
});
socket.on('close', () => process.exit(0));
