// Starting tlstap-agent through `--remote CMD`: find out what the far side is, push the agent when it
// is missing or stale (by SHA-256), run it and check with HELLO that the agent answering is ours.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import { AgentConnection, AgentError, spawnShell } from './connection.js';
import { AGENT_PROTOCOL, Args, OP, decodeHello, fileCrc32 } from './protocol.js';
import type { AgentHello } from './protocol.js';

/** How to reach the agent. */
export interface RemoteOptions {
  /**
   * A command that, followed by one shell word, runs that word as a shell command on the target:
   * `ssh root@host`, `adb shell su -c`, `sh -c` (this machine, for tests).
   */
  command: string;
  /** Where the agent lives on the target (default: /data/local/tmp/tlstap-agent on Android, else ~/.cache/tlstap/tlstap-agent). */
  agentPath?: string;
  /** The agent's --root: every path it is asked for is looked up under this directory. */
  root?: string;
  /** The agent binaries' directory, agent/build by default (one subdirectory per `uname -m`). */
  buildDir?: string;
  /** Told about each step (probe, push), for -v. */
  onStep?: (text: string) => void;
}

/** What the probe learnt about the target. */
export interface RemoteTarget {
  /** Levels of shell quoting the command needs: 1 for ssh and sh -c, 2 when a `su -c` parses once more. */
  quoting: number;
  /** `uname -m` there. */
  machine: string;
  android: boolean;
  /** Where the agent is, and the SHA-256 of what is there now ('' if nothing). */
  agentPath: string;
  agentSha256: string;
}

/** The far side could not be reached or prepared; the message says what to do. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  readonly hint: string;
  constructor(message: string, hint: string) {
    super(message);
    this.hint = hint;
  }
}

const PROBE_MARK = 'tlstap-probe-1';
/** The probe's last line when it goes on as the agent. */
const EXEC_MARK = 'tlstap-exec-1';
const PROBE_TIMEOUT_MS = 30_000;

/** The machines (`uname -m`) the agent is built for. */
export const AGENT_MACHINES: readonly string[] = ['x86_64', 'aarch64'];

/** Quotes a string as one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The local shell command that runs `script` on the target through `command`, quoted `levels` times. */
export function remoteShellCommand(command: string, script: string, levels: number): string {
  let word = script;
  for (let i = 0; i < levels; i++) word = shellQuote(word);
  return `${command} ${word}`;
}

/** The agent binary for a `uname -m` name, built by scripts/build-agent.sh. */
export function agentBinary(machine: string, buildDir = join(packageRoot(), 'agent', 'build')): string {
  const path = join(buildDir, machine, 'tlstap-agent');
  if (!existsSync(path)) {
    throw new RemoteError(
      `no tlstap-agent for ${machine}: ${path} is missing`,
      AGENT_MACHINES.includes(machine)
        ? 'build it with `bash scripts/build-agent.sh` (needs gcc, and crossbuild-essential-arm64 for aarch64)'
        : `the agent is built for ${AGENT_MACHINES.join(' and ')} only (tlstap probes 64-bit code)`,
    );
  }
  return path;
}

function run(shellCommand: string, input?: Buffer): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile('/bin/sh', ['-c', shellCommand], { timeout: PROBE_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ stdout, stderr, code });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

/** The probe script: a marker, the machine, Android or not, the agent's place and its SHA-256. */
function probeScript(agentPath: string | undefined, exec?: { hashes: Map<string, string>; args: string }): string {
  const place =
    agentPath !== undefined
      ? `p=${shellQuote(agentPath)}`
      : 'if [ -d /system/bin ] && [ -d /data/local/tmp ]; then p=/data/local/tmp/tlstap-agent; ' +
        'else p="${HOME:-/root}/.cache/tlstap/tlstap-agent"; fi';
  const lines = [
    `echo ${PROBE_MARK}`,
    'm=$(uname -m)',
    'echo "$m"',
    'if [ -d /system/bin ] && [ -d /data/local/tmp ]; then echo android; else echo linux; fi',
    place,
    'echo "$p"',
    's=$( (sha256sum "$p" || toybox sha256sum "$p") 2>/dev/null | cut -d" " -f1)',
    'echo "$s"',
  ];
  if (exec !== undefined && exec.hashes.size > 0) {
    // The agent in place is this front end's for that machine: it starts on this very connection.
    const cases = [...exec.hashes].map(([machine, hash]) => `${machine}:${hash}`).join('|');
    lines.push(`case "$m:$s" in ${cases}) echo ${EXEC_MARK}; exec "$p"${exec.args};; esac`);
  }
  lines.push('true');
  return lines.join('; ');
}

/** Parses the probe's lines after the marker; undefined without the marker. */
function parseProbe(text: string, quoting: number): RemoteTarget | undefined {
  const lines = text.split('\n');
  const at = lines.indexOf(PROBE_MARK);
  if (at < 0) return undefined;
  const [machine = '', kind = '', agentPath = '', sha = ''] = lines.slice(at + 1);
  return { quoting, machine, android: kind === 'android', agentPath, agentSha256: sha.trim() };
}

/**
 * Finds out how to talk to the target: tries one level of quoting (ssh, sh -c), then two (a `su -c`
 * behind `adb shell` parses the command once more), and reads the machine and the agent's hash.
 */
export async function probeRemote(options: RemoteOptions): Promise<RemoteTarget> {
  const script = probeScript(options.agentPath);
  let last = { stdout: '', stderr: '', code: 0 };
  for (const quoting of [1, 2]) {
    last = await run(remoteShellCommand(options.command, script, quoting));
    const target = parseProbe(last.stdout, quoting);
    if (target !== undefined) return target;
  }
  const said = last.stderr.trim().split('\n').slice(-2).join(' / ');
  throw new RemoteError(
    `cannot run a shell command through --remote ${shellQuote(options.command)}${said === '' ? '' : `: ${said}`}`,
    'the command must run its last argument as a shell command there, e.g. --remote "ssh root@host", ' +
      '--remote "adb shell su -c" or --remote "sh -c"; check that it works by hand with `echo ok` as that argument',
  );
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Copies the agent to the target through the command (stdin → cat), atomically (a temporary name, then mv). */
async function pushAgent(options: RemoteOptions, target: RemoteTarget, binary: Buffer): Promise<void> {
  const p = shellQuote(target.agentPath);
  const script =
    `mkdir -p "$(dirname ${p})" && t=${p}.tmp.$$ && cat > "$t" && chmod 700 "$t" && mv -f "$t" ${p} && ` +
    `(sha256sum ${p} || toybox sha256sum ${p}) 2>/dev/null | cut -d" " -f1`;
  const done = await run(remoteShellCommand(options.command, script, target.quoting), binary);
  const got = done.stdout.trim();
  if (done.code !== 0 || got !== sha256(binary)) {
    throw new RemoteError(
      `cannot put the agent at ${target.agentPath} on the target${done.stderr.trim() === '' ? '' : `: ${done.stderr.trim()}`}`,
      'choose a writable place with --agent-path (on Android /data/local/tmp is the usual one)',
    );
  }
}

/** A started agent and what it said about itself. */
export interface RemoteAgent {
  connection: AgentConnection;
  hello: AgentHello;
  target: RemoteTarget;
  /** Whether the agent was copied to the target this time. */
  pushed: boolean;
}

/** The SHA-256 of each local agent binary, by `uname -m` name. */
function localAgentHashes(buildDir = join(packageRoot(), 'agent', 'build')): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const machine of AGENT_MACHINES) {
    const path = join(buildDir, machine, 'tlstap-agent');
    if (existsSync(path)) hashes.set(machine, sha256(readFileSync(path)));
  }
  return hashes;
}

/**
 * Runs the probe, which starts the agent at once when the one in place is ours: one connection
 * (one ssh handshake) for the common case. Resolves with what the probe said and, if the agent
 * started, the connection to it; undefined if the probe's marker never came (quoting to retry).
 */
function probeAndStart(options: RemoteOptions, args: string): Promise<{ target: RemoteTarget; connection?: AgentConnection } | undefined> {
  const script = probeScript(options.agentPath, { hashes: localAgentHashes(options.buildDir), args });
  const child = spawnShell(remoteShellCommand(options.command, script, 1));
  return new Promise((resolve) => {
    let text = Buffer.alloc(0);
    const timer = setTimeout(() => child.kill('SIGTERM'), PROBE_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      text = Buffer.concat([text, chunk]);
      const end = text.indexOf(`\n${EXEC_MARK}\n`);
      if (end < 0) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('close', onClose);
      const target = parseProbe(text.subarray(0, end + 1).toString('utf8'), 1)!;
      resolve({ target, connection: AgentConnection.adopt(child, text.subarray(end + EXEC_MARK.length + 2)) });
    };
    const onClose = () => {
      clearTimeout(timer);
      const target = parseProbe(text.toString('utf8'), 1);
      resolve(target === undefined ? undefined : { target });
    };
    child.stdout!.on('data', onData);
    child.stderr!.resume();
    child.on('close', onClose);
    child.on('error', () => undefined);
    child.stdin!.on('error', () => undefined);
  });
}

/** Probes the target, pushes the agent if it is missing or stale, starts it and says HELLO. */
export async function startRemoteAgent(options: RemoteOptions): Promise<RemoteAgent> {
  const args = options.root === undefined ? '' : ` --root ${shellQuote(options.root)}`;
  const first = await probeAndStart(options, args);
  const target = first?.target ?? (await probeRemote(options));
  options.onStep?.(`remote: ${target.machine}${target.android ? ' (Android)' : ''}, agent at ${target.agentPath}`);
  const binary = readFileSync(agentBinary(target.machine, options.buildDir));
  let pushed = false;
  let connection = first?.connection;
  if (connection === undefined) {
    if (target.agentSha256 !== sha256(binary)) {
      options.onStep?.(`remote: ${target.agentSha256 === '' ? 'no agent there' : 'the agent there is stale'}; pushing ${binary.length} bytes`);
      await pushAgent(options, target, binary);
      pushed = true;
    }
    connection = AgentConnection.spawn(remoteShellCommand(options.command, `exec ${shellQuote(target.agentPath)}${args}`, target.quoting));
  }
  try {
    const hello = await sayHello(connection);
    if (hello.selfCrc32 !== fileCrc32(binary) || hello.selfSize !== binary.length) {
      throw new RemoteError(
        `the agent that answered at ${target.agentPath} is not the one tlstap pushed (size ${hello.selfSize}, expected ${binary.length})`,
        'something replaced it meanwhile: choose a place only root can write with --agent-path',
      );
    }
    return { connection, hello, target, pushed };
  } catch (err) {
    await connection.close(1000).catch(() => undefined);
    throw err;
  }
}

/** HELLO: exchanges protocol versions and returns what the agent says about itself. */
export async function sayHello(connection: AgentConnection): Promise<AgentHello> {
  let hello: AgentHello;
  try {
    hello = decodeHello(await connection.request(OP.HELLO, new Args().u32(AGENT_PROTOCOL).done()));
  } catch (err) {
    if (!(err instanceof AgentError) || err.code !== 'EPROTONOSUPPORT') throw err;
    throw new RemoteError(`the agent speaks another protocol than this tlstap (${AGENT_PROTOCOL}): ${err.message}`, PROTOCOL_FIX);
  }
  if (hello.protocol !== AGENT_PROTOCOL) {
    throw new RemoteError(`the agent speaks protocol ${hello.protocol}, this tlstap ${AGENT_PROTOCOL}`, PROTOCOL_FIX);
  }
  return hello;
}

const PROTOCOL_FIX = 'rebuild the agent with this tlstap (`bash scripts/build-agent.sh`); tlstap then pushes it, as its hash changed';
