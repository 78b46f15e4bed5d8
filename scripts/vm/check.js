#!/usr/bin/env node
// Checks a test VM's capture on the host: the file the guest served over TLS against the plaintext
// tlstap captured of curl's reads there and against what curl saved, by sha256. (openssl s_server
// -WWW writes through an SSL BIO, which calls OpenSSL's internal write, not SSL_write: its side is
// not seen, and not checked.)
// Usage: node scripts/vm/check.js SHARE_DIR   (the directory scripts/vm-test.sh shared with the guest)
// Prints one line per figure, writes SHARE_DIR/out/result.json, exits 1 unless every hash matches.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const share = process.argv[2];
if (!share) {
  console.error('usage: node scripts/vm/check.js SHARE_DIR');
  process.exit(2);
}
const out = join(share, 'out');
const read = (name) => (existsSync(join(out, name)) ? readFileSync(join(out, name), 'utf8').trim() : undefined);
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** The body of one HTTP/1.x response: the bytes after the first blank line. */
function body(response) {
  const end = response.indexOf('\r\n\r\n');
  return end < 0 ? Buffer.alloc(0) : response.subarray(end + 4);
}

/** What `comm` moved in direction `dir`, joined in capture order, with the calls and files seen. */
function side(records, comm, dir) {
  const calls = records.filter((r) => r.type === 'data' && r.comm === comm && r.dir === dir);
  const bytes = Buffer.concat(calls.map((r) => (r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.base64 ?? '', 'base64'))));
  const data = body(bytes);
  return {
    calls: calls.length,
    funcs: [...new Set(calls.map((r) => r.func))],
    files: [...new Set(calls.map((r) => r.file))],
    truncated: calls.reduce((n, r) => n + r.truncated + r.lost, 0),
    bytes: data.length,
    sha256: sha256(data),
  };
}

const [name] = readdirSync(join(share, 'www'));
const served = readFileSync(join(share, 'www', name));
const lines = (read('capture.jsonl') ?? '').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
const curlBody = existsSync(join(out, 'curl.body')) ? readFileSync(join(out, 'curl.body')) : Buffer.alloc(0);
const result = {
  kernel: read('uname.txt'),
  node: read('node-version.txt'),
  accel: read('accel.txt'),
  curl_exit: Number(read('curl.rc')),
  tlstap_exit: Number(read('tlstap.rc')),
  served: { file: name, bytes: served.length, sha256: sha256(served) },
  curl_saved: { bytes: curlBody.length, sha256: sha256(curlBody) },
  curl_read: side(lines, 'curl', 'read'),
  perf_events: Number(read('perf-events.txt')),
  uprobe_multi_symbols: Number(read('uprobe-multi.txt')),
  summary: lines.find((l) => l.type === 'summary'),
};
// arm64: the capture of the agent alone, driven from the host's front end (scripts/vm/agent-drive.js).
if (existsSync(join(share, 'agent-check'))) {
  const remote = (read('remote.jsonl') ?? '').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const saved = existsSync(join(out, 'agent-curl.body')) ? readFileSync(join(out, 'agent-curl.body')) : Buffer.alloc(0);
  result.agent = {
    start_ms: Number(read('remote-start-ms.txt')),
    curl_exit: Number(read('agent-curl.rc')),
    tlstap_exit: Number(read('remote.rc')),
    curl_saved: { bytes: saved.length, sha256: sha256(saved) },
    curl_read: side(remote, 'curl', 'read'),
    summary: remote.find((l) => l.type === 'summary'),
  };
}
writeFileSync(join(out, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);

const row = (label, x) => console.log(`${label.padEnd(36)} ${x.sha256}  ${x.bytes} bytes`);
console.log(`guest: ${result.kernel}, node ${result.node}, ${result.accel}`);
row('served file', result.served);
row('saved by curl', result.curl_saved);
row(`captured: curl's ${result.curl_read.funcs.join('/')} (${result.curl_read.calls})`, result.curl_read);
console.log(`tlstap's perf-event fds while attached: ${result.perf_events} (uprobe_multi in kallsyms: ${result.uprobe_multi_symbols})`);
if (result.agent) {
  console.log(`agent alone, driven from the host: capture attached ${result.agent.start_ms} ms after the command (push included)`);
  row(`agent: saved by curl`, result.agent.curl_saved);
  row(`agent: captured curl's ${result.agent.curl_read.funcs.join('/')} (${result.agent.curl_read.calls})`, result.agent.curl_read);
}
// An open defect: on the arm64 guest (TCG), tlstap sometimes dies by a signal at process exit, after
// its outputs are finished (the jsonl summary is written). It is reported, not taken for a capture
// failure; anything else than 0 on amd64, or before the summary, is a failure.
const crashedAfterOutputs = result.tlstap_exit > 128 && result.summary !== undefined && / aarch64$/.test(result.kernel);
if (crashedAfterOutputs) console.log(`KNOWN DEFECT: tlstap died by signal ${result.tlstap_exit - 128} at exit, after finishing its outputs`);
const problems = [
  result.curl_exit !== 0 && `curl exited ${result.curl_exit}`,
  result.tlstap_exit !== 0 && !crashedAfterOutputs && `tlstap exited ${result.tlstap_exit}`,
  result.summary === undefined && 'no summary line in the capture',
  result.curl_saved.sha256 !== result.served.sha256 && 'curl saved something else than the served file',
  result.curl_read.sha256 !== result.served.sha256 && "the plaintext of curl's reads is not the served file",
  result.agent && result.agent.curl_exit !== 0 && `curl (agent check) exited ${result.agent.curl_exit}`,
  result.agent && result.agent.tlstap_exit !== 0 && `the front end driving the agent exited ${result.agent.tlstap_exit}`,
  result.agent && result.agent.curl_read.sha256 !== result.served.sha256 && "the agent's capture of curl's reads is not the served file",
].filter(Boolean);
for (const p of problems) console.log(`MISMATCH: ${p}`);
if (result.agent && result.agent.tlstap_exit !== 0) console.log(`the front end's last lines:\n${(read('remote.stderr') ?? '').split('\n').slice(-15).join('\n')}`);
if (result.tlstap_exit !== 0) console.log(`tlstap's last lines:\n${(read('tlstap.stderr') ?? '').split('\n').slice(-15).join('\n')}`);
console.log(problems.length === 0 ? 'match: the captured plaintext is the served file' : `${problems.length} problem(s)`);
process.exit(problems.length === 0 ? 0 : 1);
