import type { Writable } from 'node:stream';
import { readsLayout } from '../events/layout.js';
import { tlstapVersion } from '../version.js';
import { CallPipeline } from '../capture/pipeline.js';
import type { CaptureContext, CaptureStats } from '../events/types.js';
import { openRecordFile } from '../record/index.js';
import type { RecordHeader } from '../record/index.js';
import { checkDistinctPaths } from '../util/private-file.js';
import { CliError } from './errors.js';
import { runNotes } from './report.js';
import { openOutputs } from './outputs.js';
import { outputPaths } from './options.js';
import type { OutputOptions } from './outputs.js';

/** The error for a recording whose event layout this build does not read. */
function layoutMismatch(path: string, header: RecordHeader): CliError {
  const ours = tlstapVersion();
  if (header.tlstapVersion === ours) {
    return new CliError(
      `${path} was recorded by another build of tlstap ${ours} with a different event layout than this build reads`,
      'replay it with the build that recorded it (a development build changes the layout without changing the version)',
    );
  }
  return new CliError(
    `${path} was recorded by tlstap ${header.tlstapVersion} with a different event layout than this tlstap ${ours} reads`,
    `replay it with tlstap ${header.tlstapVersion}`,
  );
}

/** `tlstap replay FILE`: a recording through the same pipeline and formats, no privileges needed. */
export async function runReplay(path: string, opts: OutputOptions, stderr: Writable = process.stderr): Promise<CaptureStats> {
  stderr.on('error', () => undefined);
  checkDistinctPaths([{ what: 'the recording', path }, ...outputPaths(opts)]);
  const reader = await openRecordFile(path);
  try {
    if (!readsLayout(reader.header.layout)) throw layoutMismatch(path, reader.header);
    const offset = BigInt(reader.header.monotonicToWallNs);
    const ctx: CaptureContext = { files: reader.header.files, wallClockNs: (mono) => mono + offset };
    if (reader.header.settings['redacted'] === true) stderr.write(`tlstap: ${path} was recorded with --redact: its credential header values are masked\n`);
    const outputs = await openOutputs(opts, ctx, (line) => stderr.write(`${line}\n`));
    const pipeline = new CallPipeline(outputs.sinks, { redact: opts.redact });
    let allFailed = false;
    outputs.onFailure((_message, all) => (allFailed ||= all));
    for await (const { batch, count } of reader.batches()) {
      pipeline.onBatch(batch, count);
      if (allFailed) break;
      // A slow output holds the reading back, so memory stays bounded.
      const backlog = pipeline.backlog();
      if (backlog) await backlog;
    }
    pipeline.flush();
    const stats = pipeline.stats();
    const { report, failures } = await outputs.finish(stats);
    stderr.write(`${report}\n${runNotes(pipeline)}`);
    for (const d of reader.damaged()) {
      stderr.write(`tlstap: warning: ${path}: ${d.bytes} damaged bytes skipped at byte ${d.offset} (${d.detail}); replay went on at the next intact frame\n`);
    }
    if (failures.length > 0) throw new CliError(`replay incomplete: ${failures.join('; ')}`);
    if (allFailed) return stats;
    const stop = reader.stopReason();
    if (stop.kind === 'truncated') {
      throw new CliError(
        `${path}: replay stopped at byte ${stop.offset}: truncated (${stop.detail}); every whole record before it was replayed`,
        'a recording cut short by a crash ends like this; the records before the cut are intact',
      );
    }
    if (stop.kind === 'corrupt') {
      throw new CliError(
        `${path}: replay stopped at byte ${stop.offset}: damaged (${stop.detail}), with no intact frame after it; every intact frame before it was replayed`,
        'the file was changed after it was written (a disk or copy error); the bytes from there on cannot be read',
      );
    }
    const damaged = reader.damaged();
    if (damaged.length > 0) {
      const bytes = damaged.reduce((n, d) => n + d.bytes, 0);
      throw new CliError(
        `${path} is damaged: ${damaged.length} stretch(es), ${bytes} bytes, failed their checks and were skipped; every intact frame was replayed`,
        'the file was changed after it was written (a disk or copy error), not cut short',
      );
    }
    return stats;
  } finally {
    await reader.close();
  }
}
