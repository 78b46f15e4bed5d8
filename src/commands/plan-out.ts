// `tlstap --remote CMD --plan-out FILE`: the capture set up as for a live one (discovery through the
// agent, the same load and attach requests), but written down for `tlstap-agent --plan FILE --record REC`,
// which records alone on that machine (a phone away from the workstation). docs/agent.md, "Recording on
// the device alone".
import { closeSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { needsGoPrograms } from '../capture/session.js';
import { encodePlan, PlanWriter } from '../remote/plan.js';
import type { PlannedFile } from '../remote/plan.js';
import { formatGoNotice } from '../targets/index.js';
import { openPrivateFile } from '../util/private-file.js';
import { LiveCapture, liveContext, recordHeader } from './capture.js';
import { checkRemoteOptions } from './capture-host.js';
import { remoteHost } from './remote-host.js';
import type { CaptureOptions } from './options.js';
import { startNotes } from './report.js';

/** Finds the targets on the --remote machine and writes the capture's plan to opts.planOut. */
export async function runPlanOut(opts: CaptureOptions, stderr: Writable = process.stderr): Promise<void> {
  checkRemoteOptions(opts);
  const { remote, planOut } = opts;
  if (remote === undefined || planOut === undefined) throw new Error('runPlanOut needs --remote and --plan-out');
  const writer = new PlanWriter();
  const { host, agent } = await remoteHost({ ...opts, remote }, (line) => {
    if (opts.verbose || line.startsWith('tlstap:')) stderr.write(`${line.startsWith('tlstap:') ? '' : 'tlstap: '}${line}\n`);
  }, writer);
  try {
    const { targets, skipped, goPrograms, blindspots, uid } = await host.resolve({ pid: opts.pid, lib: opts.lib, flavour: opts.verbose });
    stderr.write(startNotes(skipped, blindspots));
    stderr.write(formatGoNotice(goPrograms, 'tlstap: warning: '));
    const kernelOpts = { ...opts, uid: opts.uid ?? uid };
    const program = await LiveCapture.load(kernelOpts, host.machine, needsGoPrograms(targets));
    const session = await program.attach(targets, () => undefined);
    // The agent fills in the recording's time fields when it starts recording.
    const { createdAt: _createdAt, monotonicToWallNs: _offset, ...header } = recordHeader(kernelOpts, liveContext(targets, 0n), host.info);
    const files: PlannedFile[] = [];
    for (const path of new Set(targets.map((t) => t.path))) files.push({ path, stat: await host.statFile!(path) });
    const fd = openPrivateFile(planOut);
    try {
      writeSync(fd, encodePlan({ header, files, requests: writer.requests }));
    } finally {
      closeSync(fd);
    }
    const where = agent.hello.hostname;
    stderr.write(
      `tlstap: plan written to ${planOut}: ${session.probeCount} probes in ${files.length} files on ${where}\n` +
        `  next: copy it there, run \`${agent.target.agentPath} --plan PLAN --record REC [--duration SECONDS]\` as root, ` +
        'bring REC back and read it with `tlstap replay REC` (any output: -f http, -w, --har)\n',
    );
  } finally {
    await host.close();
  }
}
