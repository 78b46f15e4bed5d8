// The machine a started agent runs on, as the BpfMachine a capture loads its program on: what its
// kernel offers is read through the agent's file view, and the object is the agent's embedded one.
import type { BpfMachine } from '../capture/backend.js';
import { kernelAtLeast, parseKernelVersion } from '../doctor/probe.js';
import type { AgentConnection } from './connection.js';
import { RemoteError } from './launch.js';
import type { AgentHello } from './protocol.js';
import { RemoteBpfSession } from './session.js';
import type { AgentRequests } from './session.js';
import type { FileView } from './view.js';

const KERNEL_BTF = '/sys/kernel/btf/vmlinux';
const TRACEFS_EVENTS = ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'];

async function exists(view: FileView, path: string): Promise<boolean> {
  return view.stat(path).then(
    () => true,
    () => false,
  );
}

/** The CPUs of a kernel's `possible` mask ("0-3", "0,2-5"): the highest one plus one. */
export function possibleCpus(text: string): number {
  let highest = -1;
  for (const part of text.trim().split(',')) {
    const last = Number(part.split('-').at(-1));
    if (Number.isInteger(last)) highest = Math.max(highest, last);
  }
  if (highest < 0) throw new Error(`cannot read the possible CPUs from "${text.trim()}"`);
  return highest + 1;
}

/**
 * The agent's machine: its kernel's features from its files and release, the capture through the agent,
 * or, given `requests` (a PlanWriter), written down for the agent to run later.
 */
export function remoteMachine(connection: AgentConnection, hello: AgentHello, view: FileView, requests: AgentRequests = connection): BpfMachine {
  const version = parseKernelVersion(hello.kernel);
  const atLeast = (major: number, minor: number) => version !== undefined && kernelAtLeast(version, major, minor);
  let opened = false;
  return {
    where: `the agent on ${hello.hostname}`,
    opensOnce: true,
    async syscallTracepoints() {
      // The agent's core mounts tracefs when it opens the object; one mounted already says more.
      for (const events of TRACEFS_EVENTS) {
        if (await exists(view, events)) return exists(view, `${events}/syscalls`);
      }
      return true;
    },
    // The helper appeared in 5.15; the agent has no feature probe of its own yet.
    attachCookies: () => atLeast(5, 15),
    kernelBtf: async () => ((await exists(view, KERNEL_BTF)) ? KERNEL_BTF : undefined),
    // 6.6 has them; a backport is not looked for (its kallsyms is larger than a READFILE).
    uprobeMulti: () => atLeast(6, 6),
    numPossibleCpus: async () => possibleCpus((await view.readFile('/sys/devices/system/cpu/possible')).toString('latin1')),
    async open(objectName, btf) {
      if (!hello.core) {
        throw new RemoteError(
          `the agent on ${hello.hostname} was built without the capture core (it serves files only)`,
          'rebuild it with `bash scripts/build-agent.sh` on a tree that has native/core, then run tlstap again (it pushes the new agent)',
        );
      }
      if (objectName !== 'tlstap.bpf.o') throw new RemoteError(`the agent carries tlstap.bpf.o only, not ${objectName}`, 'capture with the default object');
      if (btf === 'empty') {
        throw new RemoteError(
          `the kernel on ${hello.hostname} has no BTF at ${KERNEL_BTF}`,
          'tlstap needs a kernel built with CONFIG_DEBUG_INFO_BTF there (Android GKI kernels and current distributions have it)',
        );
      }
      if (btf !== undefined) throw new RemoteError('--btf names a file on this machine; it cannot be used with --remote', 'leave out --btf');
      // The agent holds one object for its lifetime: a second open (a load retried for other links) cannot be served.
      if (opened) throw new RemoteError('the program failed to load for uprobe_multi links on the agent, which loads its object once per run', 'report the kernel version there; a kernel before 6.6 gets per-probe links');
      opened = true;
      return new RemoteBpfSession(requests);
    },
  };
}
