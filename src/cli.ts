#!/usr/bin/env node
// The command line: commander wired to the functions in src/commands/. Nothing else lives here.
// Each command's module is imported when that command runs: a capture does not wait for the code of
// doctor, demo or replay to load.
import { Command } from './commands/commander.js';
import type { Option } from './commands/commander.js';
import { captureOptions, checkOutputChoices, outputOptions } from './commands/options.js';
import type { OutputOptions } from './commands/outputs.js';
import type { CaptureOptions } from './commands/options.js';
import { reportFatal } from './commands/errors.js';
import { stdoutAbandoned } from './commands/signals.js';
import { tlstapVersion } from './version.js';

function pidOption(): Option {
  return captureOptions().find((o) => o.long === '--pid')!;
}

function libOption(): Option {
  return captureOptions().find((o) => o.long === '--lib')!;
}

const program = new Command('tlstap')
  .description('Shows the plaintext inside TLS connections with eBPF uprobes: no proxy, no keys.')
  .version(tlstapVersion())
  .enablePositionalOptions()
  .showHelpAfterError('(run tlstap --help for the options)');
for (const option of captureOptions()) program.addOption(option);
program.action(async (opts: CaptureOptions) => {
  if (opts.planOut !== undefined) {
    const { runPlanOut } = await import('./commands/plan-out.js');
    await runPlanOut(opts);
    return;
  }
  const { runCapture } = await import('./commands/capture.js');
  await runCapture(checkOutputChoices({ ...opts, formatGiven: program.getOptionValueSource('format') === 'cli' }));
});

program
  .command('libs')
  .description('list what would be probed: file, flavour, version, each function with its offset')
  .addOption(pidOption())
  .addOption(libOption())
  .option('--json', 'print JSON', false)
  .action(async (opts: { pid?: number; lib: string[]; json: boolean }) => {
    const { runLibs } = await import('./commands/libs.js');
    process.stdout.write(`${await runLibs(opts)}\n`);
  });

program
  .command('doctor')
  .description('check privileges, BTF, uprobe and ring buffer support, and say how to fix what is missing')
  .action(async () => {
    const { formatDoctor, runDoctor } = await import('./doctor/index.js');
    const checks = await runDoctor();
    process.stdout.write(`${formatDoctor(checks, process.stdout.isTTY === true && !process.env.NO_COLOR)}\n`);
    if (checks.some((c) => c.status === 'fail')) process.exitCode = 1;
  });

program
  .command('demo')
  .description('start a local HTTPS server, fetch from it with curl and node, and show the captured plaintext')
  .action(async () => {
    const defaults = program.opts<CaptureOptions>();
    const { runDemo } = await import('./commands/demo.js');
    await runDemo({ maxBytes: defaults.maxBytes, ringBuffer: defaults.ringBuffer });
  });

const replay = program
  .command('replay')
  .description('run a --record file through the output formats (no privileges needed)')
  .argument('<file>', 'a file written by tlstap --record')
  .action(async (file: string, opts: OutputOptions) => {
    const { runReplay } = await import('./commands/replay.js');
    await runReplay(file, checkOutputChoices({ ...opts, formatGiven: replay.getOptionValueSource('format') === 'cli' }));
  });
for (const option of outputOptions()) replay.addOption(option);

program
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.exitCode = reportFatal(err, process.stderr);
  })
  .finally(() => {
    if (stdoutAbandoned()) process.exit();
  });
