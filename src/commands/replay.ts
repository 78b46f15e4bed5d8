import type { Writable } from 'node:stream';
import { readsLayout } from '../events/layout.js';
import { tlstapVersion } from '../version.js';
import { CallPipeline } from '../capture/pipeline.js';
import type { CaptureContext, CaptureStats } from '../events/types.js';
import { openRecordFile } from '../record/index.js';
import { CliError } from './errors.js';
import { runNotes } from './report.js';
import { openOutputs } from './outputs.js';
import type { OutputOptions } from './outputs.js';

/** `tlstap replay FILE`: a recording through the same pipeline and formats, no privileges needed. */
export async function runReplay(path: string, opts: OutputOptions, stderr: Writable = process.stderr): Promise<CaptureStats> {
  const reader = await openRecordFile(path);
  try {
    if (!readsLayout(reader.header.layout)) {
      throw new CliError(
        `${path} was recorded by tlstap ${reader.header.tlstapVersion} with a different event layout than this tlstap ${tlstapVersion()} reads`,
        `replay it with tlstap ${reader.header.tlstapVersion}`,
      );
    }
    const offset = BigInt(reader.header.monotonicToWallNs);
    const ctx: CaptureContext = { files: reader.header.files, wallClockNs: (mono) => mono + offset };
    if (reader.header.settings['redacted'] === true) stderr.write(`tlstap: ${path} was recorded with --redact: its credential header values are masked\n`);
    const outputs = await openOutputs(opts, ctx);
    const pipeline = new CallPipeline(outputs.sinks, { redact: opts.redact });
    let failure: string | undefined;
    outputs.onFailure((message) => (failure = message));
    for await (const { batch, count } of reader.batches()) {
      pipeline.onBatch(batch, count);
      if (failure) break;
      // A slow output holds the reading back, so memory stays bounded.
      const backlog = pipeline.backlog();
      if (backlog) await backlog;
    }
    pipeline.flush();
    const stats = pipeline.stats();
    stderr.write(`${await outputs.finish(stats)}\n${runNotes(pipeline)}`);
    if (failure) throw new CliError(`replay stopped: ${failure}`);
    const stop = reader.stopReason();
    if (stop.kind !== 'end') {
      throw new CliError(
        `${path}: replay stopped at byte ${stop.offset}: ${stop.kind} (${stop.detail}); every whole record before it was replayed`,
        'a recording cut short by a crash ends like this; the records before the cut are intact',
      );
    }
    return stats;
  } finally {
    await reader.close();
  }
}
