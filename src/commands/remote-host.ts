// The machine reached with --remote CMD: tlstap-agent started there, its file view, kernel and clock
// as a CaptureHost (capture-host.ts). Loaded only for --remote.
import { remoteMachine } from '../remote/machine.js';
import { AgentView } from '../remote/agent-view.js';
import { startRemoteAgent } from '../remote/launch.js';
import type { RemoteAgent } from '../remote/launch.js';
import type { AgentRequests } from '../remote/session.js';
import { Args, OP, decodeClock } from '../remote/protocol.js';
import { androidTargets, linuxLayout } from '../targets/android.js';
import type { AndroidDiscovery } from '../targets/android.js';
import { TargetError } from '../targets/errors.js';
import { onlyGoProgramsError } from '../targets/go.js';
import { CliError } from './errors.js';
import type { CaptureOptions } from './options.js';
import type { CaptureHost } from './capture-host.js';

/** Node's names of the architectures, from `uname -m`. */
const NODE_ARCH: Record<string, string> = { x86_64: 'x64', aarch64: 'arm64' };

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
