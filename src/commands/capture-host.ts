// The machine a capture runs its probes on: this one (the addon, node:fs discovery), or one reached
// with --remote CMD through tlstap-agent (its file view, its kernel, its clock; remote-host.ts, loaded
// only for --remote). The capture command does the same steps on either.
import type { BpfMachine } from '../capture/backend.js';
import { monotonicToWallOffsetNs } from '../capture/clock.js';
import type { ViewStat } from '../remote/view.js';
import { hostInfo } from '../version.js';
import { CliError } from './errors.js';
import { outputPaths } from './options.js';
import type { CaptureOptions } from './options.js';
import type { ResolvedTargets, TargetOptions } from './resolve-targets.js';

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
