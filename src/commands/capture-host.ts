// The machine a capture runs its probes on: this one (the addon, node:fs discovery), or one reached
// with --remote CMD through tlstap-agent (its file view, its kernel, its clock). The capture command
// does the same steps on either.
import type { BpfMachine } from '../capture/backend.js';
import { monotonicToWallOffsetNs } from '../capture/clock.js';
import { remoteMachine } from '../remote/machine.js';
import { AgentView } from '../remote/agent-view.js';
import { startRemoteAgent } from '../remote/launch.js';
import type { RemoteAgent } from '../remote/launch.js';
import type { AgentRequests } from '../remote/session.js';
import type { ViewStat } from '../remote/view.js';
import { Args, OP, decodeClock } from '../remote/protocol.js';
import { androidTargets, linuxLayout } from '../targets/android.js';
import type { AndroidDiscovery } from '../targets/android.js';
import { onlyGoProgramsError, TargetError } from '../targets/index.js';
import { hostInfo } from '../version.js';
import { CliError } from './errors.js';
import { outputPaths } from './outputs.js';
import type { CaptureOptions } from './options.js';
import type { ResolvedTargets, TargetOptions } from './capture.js';

/** The machine a capture probes. */
export interface CaptureHost {
  /** Where the program loads: undefined for this machine. */
  machine?: BpfMachine;
  /** Finds the files to probe there; `uid`: the one user whose processes to capture (--package). */
  resolve(opts: TargetOptions): Promise<ResolvedTargets & { uid?: number }>;
  /** Wall-clock ns minus CLOCK_MONOTONIC ns there (the recording header's monotonicToWallNs). */
  clockOffsetNs(): Promise<bigint>;
  /** CLOCK_MONOTONIC there, in ns (the time of the recording's final counters). */
  monotonicNs(): Promise<bigint>;
  /** The kernel, architecture and name of the machine (the recording header's host). */
  info: { kernel: string; arch: string; hostname: string };
  /** Whether probed files are watched for replacement on disk (only this machine's files can be). */
  watchesFiles: boolean;
  /** Settles, with why, if the machine becomes unreachable while capturing (the --remote pipe closed). */
  lost?: Promise<Error>;
  /** Says goodbye (the agent releases everything and exits); resolves with its exit code. */
  close(): Promise<number | null>;
  /** A file's identity there (a plan's check that the file did not change), where the host can tell it. */
  statFile?(path: string): Promise<ViewStat>;
}

/** This machine. */
export function localHost(resolve: (opts: TargetOptions) => Promise<ResolvedTargets>): CaptureHost {
  return {
    resolve,
    clockOffsetNs: async () => monotonicToWallOffsetNs(),
    monotonicNs: async () => process.hrtime.bigint(),
    info: hostInfo(),
    watchesFiles: true,
    close: async () => null,
  };
}

/** Node's names of the architectures, from `uname -m`. */
const NODE_ARCH: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64' };

/** Options that only --remote gives meaning to, or that it cannot honour. */
export function checkRemoteOptions(opts: CaptureOptions): void {
  if (opts.planOut !== undefined) {
    if (opts.remote === undefined) {
      throw new CliError('--plan-out writes a plan for tlstap-agent on a machine reached with --remote', "add --remote CMD, e.g. --remote 'adb shell su -c'");
    }
    const outputs = [...outputPaths(opts), ...(opts.record === undefined ? [] : [{ what: '--record', path: opts.record }])];
    if (outputs.length > 0 || opts.duration !== undefined) {
      const given = [...outputs.map((o) => o.what), ...(opts.duration === undefined ? [] : ['--duration'])].join(', ');
      throw new CliError(
        `--plan-out captures nothing here, so ${given} would do nothing: the agent records there, alone`,
        `drop ${given}; give --duration to tlstap-agent, and the outputs to \`tlstap replay REC\` once the recording is back`,
      );
    }
  }
  if (opts.remote === undefined) {
    if (opts.agentPath !== undefined) throw new CliError('--agent-path is the agent\'s place on a --remote machine', 'add --remote CMD, or drop --agent-path');
    if (opts.package !== undefined) throw new CliError('--package picks an app on an Android device reached with --remote', "add --remote 'adb shell su -c'");
    return;
  }
  if (opts.btf !== undefined) throw new CliError('--btf names a file on this machine; the --remote machine uses its own kernel BTF', 'drop --btf');
  if (opts.package !== undefined && opts.pid !== undefined) throw new CliError('--package and -p each choose the processes', 'give one of them');
}

/**
 * Starts the agent through --remote CMD (pushing it if need be) and wraps it as the capture's host.
 * `requests`: where the capture's BPF requests go instead of the agent (a plan being written).
 */
export async function remoteHost(opts: CaptureOptions & { remote: string }, onStep: (line: string) => void, requests?: AgentRequests): Promise<{ host: CaptureHost; agent: RemoteAgent }> {
  const agent = await startRemoteAgent({ command: opts.remote, agentPath: opts.agentPath, onStep });
  const { connection, hello, target } = agent;
  const view = new AgentView(connection, hello.hostname);
  const clock = async () => decodeClock(await connection.request(OP.CLOCK, new Args().done()));
  if (opts.package !== undefined && !target.android) {
    await connection.close();
    throw new CliError(`--package picks an Android app, and ${hello.hostname} is not Android (no /system/bin)`, 'drop --package, or use -p or --uid');
  }
  const host: CaptureHost = {
    machine: remoteMachine(connection, hello, view, requests),
    async resolve(targetOpts) {
      const found = await androidTargets(view, {
        package: opts.package,
        pid: targetOpts.pid,
        lib: targetOpts.lib,
        layout: target.android ? undefined : linuxLayout(target.machine),
      });
      if (found.skipped32.processes + found.skipped32.libraries > 0) {
        onStep(`tlstap: skipped 32-bit code (tlstap probes 64-bit code only): ${found.skipped32.processes} processes, ${found.skipped32.libraries} libraries`);
      }
      if (found.targets.length === 0 && found.goPrograms.length > 0) throw onlyGoProgramsError(`${hello.hostname} (${view.where})`, found.goPrograms);
      if (found.targets.length === 0) {
        throw new TargetError(`no TLS library (OpenSSL, BoringSSL, GnuTLS or NSS) found on ${hello.hostname} (${view.where})`, {
          hint: 'name one with --lib PATH (a path on that machine)',
        });
      }
      return { targets: found.targets, skipped: found.skipped, goPrograms: found.goPrograms, blindspots: [], ...packageUid(found, opts, onStep) };
    },
    async clockOffsetNs() {
      const { monotonicNs, realtimeNs } = await clock();
      return realtimeNs - monotonicNs;
    },
    monotonicNs: async () => (await clock()).monotonicNs,
    info: { kernel: hello.kernel, arch: NODE_ARCH[hello.machine] ?? hello.machine, hostname: hello.hostname },
    watchesFiles: false,
    lost: connection.gone,
    close: () => connection.close(),
    statFile: (path) => view.stat(path),
  };
  return { host, agent };
}

/**
 * The uid the kernel filters on for --package: the one Android user's uid running the app, or user 0's
 * when none runs it yet. The kernel filters on one uid: several users running it need --uid to choose.
 */
export function packageUid(found: AndroidDiscovery, opts: CaptureOptions, onStep: (line: string) => void): { uid?: number } {
  if (found.appId === undefined || opts.uid !== undefined) return {};
  if (found.uids.length > 1) {
    throw new CliError(
      `${opts.package} runs in ${found.uids.length} Android users (uids ${found.uids.join(', ')}), and the kernel filters on one uid`,
      `choose one with --uid, e.g. --uid ${found.uids[0]}`,
    );
  }
  const uid = found.uids[0] ?? found.appId;
  if (found.uids.length === 0) onStep(`tlstap: ${opts.package} is not running; capturing its uid ${uid} (Android user 0) once it starts`);
  return { uid };
}
