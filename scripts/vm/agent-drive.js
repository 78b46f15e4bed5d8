#!/usr/bin/env node
// The host's side of the arm64 agent check (scripts/vm-test.sh): once the guest's shell listener is
// up, runs this tree's x86_64 front end with --remote through it (the arm64 agent is pushed into the
// guest and is the only part of tlstap there), says "go" when the capture is attached, stops it
// (Ctrl-C) after the guest's curl finished, and tells the guest it is done, whatever happened.
// Usage: node scripts/vm/agent-drive.js SHARE_DIR PORT
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [share, port] = process.argv.slice(2);
const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(share, 'out');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const remote = `node ${join(repo, 'scripts', 'vm', 'tcp-shell.js')} 127.0.0.1:${port}`;

async function drive() {
  const started = Date.now();
  const tlstap = spawn(process.execPath, [join(repo, 'dist', 'src', 'cli.js'), '--remote', remote, '--agent-path', '/tmp/tlstap-agent',
    '--comm', 'curl', '-f', 'jsonl', '-o', join(out, 'remote.jsonl'), '-v'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  tlstap.stderr.on('data', (b) => (stderr += b.toString()));
  const exited = new Promise((resolve) => tlstap.once('close', (code, signal) => resolve(code ?? 128)));
  try {
    // Under TCG the push (1.5 MB through the emulated network) and the load take a while.
    for (let i = 0; !/capturing \(/.test(stderr); i++) {
      if (tlstap.exitCode !== null || i > 6000) throw new Error('the remote capture did not attach');
      await sleep(100);
    }
    writeFileSync(join(out, 'remote-start-ms.txt'), `${Date.now() - started}\n`);
    writeFileSync(join(out, 'agent.go'), '');
    for (let i = 0; !existsSync(join(out, 'agent-curl.rc')); i++) {
      if (i > 3000) throw new Error("the guest's curl did not finish");
      await sleep(100);
    }
    await sleep(1000);
    tlstap.kill('SIGINT');
  } catch (err) {
    stderr += `agent-drive: ${err.message}\n`;
    tlstap.kill('SIGTERM');
  }
  writeFileSync(join(out, 'remote.rc'), `${await exited}\n`);
  writeFileSync(join(out, 'remote.stderr'), stderr);
}

try {
  await drive();
} finally {
  writeFileSync(join(out, 'agent.done'), '');
}
