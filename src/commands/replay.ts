import type { Writable } from 'node:stream';
import { CallPipeline } from '../capture/pipeline.js';
import type { CaptureContext, CaptureStats } from '../events/types.js';
import { createFormatSink, formatSummary, summaryRecord } from '../output/index.js';
import { openRecordFile } from '../record/index.js';
import { createPrivateWriteStream } from '../util/private-file.js';
import { CliError } from './errors.js';
import type { FormatName } from '../output/index.js';

/** Options of `tlstap replay`. */
export interface ReplayOptions {
  format: FormatName;
  output?: string;
  color?: boolean;
}

/** `tlstap replay FILE`: a recording through the same pipeline and formats, no privileges needed. */
export async function runReplay(path: string, opts: ReplayOptions, stderr: Writable = process.stderr): Promise<CaptureStats> {
  const reader = await openRecordFile(path);
  try {
    const offset = BigInt(reader.header.monotonicToWallNs);
    const ctx: CaptureContext = { files: reader.header.files, wallClockNs: (mono) => mono + offset };
    const out: Writable = opts.output ? createPrivateWriteStream(opts.output) : process.stdout;
    const color = opts.color ?? (!opts.output && process.stdout.isTTY === true && !process.env.NO_COLOR);
    const sink = createFormatSink(opts.format, out, ctx, { color });
    const pipeline = new CallPipeline([sink]);
    for await (const { batch, count } of reader.batches()) {
      pipeline.onBatch(batch, count);
      if (sink.needsDrain) await sink.drained();
    }
    pipeline.flush();
    const stats = pipeline.stats();
    if (opts.format === 'jsonl') sink.writeLine(JSON.stringify(summaryRecord(stats)));
    await pipeline.close();
    if (opts.output) await new Promise<void>((resolve) => out.end(() => resolve()));
    const stop = reader.stopReason();
    stderr.write(`${formatSummary(stats)}\n`);
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
