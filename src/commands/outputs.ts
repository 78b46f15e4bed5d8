import type { Writable } from 'node:stream';
import type { CallSink, CaptureContext, CaptureStats } from '../events/types.js';
import type { HttpTracker } from '../http/index.js';
import { createFormatSink, formatSummary, summaryRecord } from '../output/index.js';
import type { FormatSink } from '../output/index.js';
import type { PcapngSink } from '../pcapng/index.js';
import { createPrivateWriteStream } from '../util/private-file.js';
import type { OutputFormat } from './options.js';
import type { WebAddress } from '../web/address.js';

/** The output options of a capture or a replay. */
export interface OutputOptions {
  format: OutputFormat;
  output?: string;
  har?: string;
  pcapng?: string;
  redact: boolean;
  /** --web: the address, or true for the default one. */
  web?: WebAddress | true;
  /** Colour on the stdout format; decided from the terminal when absent. */
  color?: boolean;
}

/** Every output of a run, opened before capturing (so a bad path fails first). */
export interface Outputs {
  sinks: CallSink[];
  /** Calls this once when an output's reader went away (EPIPE) or its disk failed. */
  onFailure(fn: (message: string) => void): void;
  /** After the input ended: final lines, every output flushed and closed; returns the stderr report. */
  finish(stats: CaptureStats): Promise<string>;
  /** Closes everything without final lines (the run failed). */
  abort(): Promise<void>;
}

/**
 * The modules the chosen outputs need, and only those: the HTTP decoders (http-parser-js, hpack.js), HAR
 * and pcapng take a while to load, and a capture should be live as soon as possible.
 */
async function outputModules(opts: OutputOptions) {
  const usesHttp = opts.format === 'http' || opts.format === 'jsonl' || opts.har !== undefined || opts.web !== undefined;
  const [http, httpOutput, har, pcapng, web] = await Promise.all([
    usesHttp ? import('../http/index.js') : undefined,
    usesHttp ? import('../output/http.js') : undefined,
    opts.har !== undefined ? import('../har/index.js') : undefined,
    opts.pcapng !== undefined ? import('../pcapng/index.js') : undefined,
    opts.web !== undefined ? import('../web/index.js') : undefined,
  ]);
  return { http, httpOutput, har, pcapng, web };
}

/** Opens the stdout format (unless `-w -` has stdout), `-o`, `--har` and `-w` outputs. */
export async function openOutputs(opts: OutputOptions, ctx: CaptureContext): Promise<Outputs> {
  const modules = await outputModules(opts);
  const { httpOutput } = modules;
  let failed: ((message: string) => void) | undefined;
  const fail = (message: string) => failed?.(message);
  const sinks: CallSink[] = [];
  // One tracker decodes HTTP for every HTTP output; those listen to it, and it closes them.
  const tracker: HttpTracker | undefined = modules.http ? new modules.http.HttpTracker() : undefined;

  let pcapng: PcapngSink | undefined;
  if (opts.pcapng !== undefined) {
    pcapng = await modules.pcapng!.createPcapngSink(opts.pcapng, ctx, { onClosed: (_e, message) => fail(message) });
    sinks.push(pcapng);
  }

  // With `-w -` stdout carries pcapng; a stdout format then needs -o.
  let main: FormatSink | undefined;
  let out: Writable | undefined;
  if (opts.format !== 'none' && (opts.pcapng !== '-' || opts.output !== undefined)) {
    out = opts.output ? createPrivateWriteStream(opts.output) : process.stdout;
    const color = opts.color ?? (!opts.output && process.stdout.isTTY === true && !process.env.NO_COLOR);
    const onClosed = (e: NodeJS.ErrnoException) => fail(`output ${opts.output ?? 'stdout'} closed: ${e.code ?? e.message}`);
    if (opts.format === 'http') {
      // A listener only: the tracker feeds it, reports its backpressure and closes it.
      httpOutput!.createHttpSink(out, ctx, { color, redact: opts.redact, tracker: tracker!, onClosed });
    } else if (opts.format === 'jsonl') {
      const jsonl = createFormatSink('jsonl', out, ctx, { color: false, onClosed });
      main = httpOutput!.withHttpRecords(jsonl, ctx, { redact: opts.redact, tracker: tracker!, summary: false });
    } else {
      main = createFormatSink(opts.format, out, ctx, { color, onClosed });
    }
    if (main) sinks.push(main);
  }

  const har = opts.har === undefined ? undefined : modules.har!.createHarSink(opts.har, ctx, { redact: opts.redact, tracker: tracker! });
  const web = modules.web && (await modules.web.openWebView(opts.web === true ? modules.web.DEFAULT_WEB_ADDRESS : opts.web!, ctx, { redact: opts.redact, tracker: tracker! }));
  // After the jsonl sink: a call's `data` line comes before the `http` records it completes.
  if (tracker) sinks.push(tracker);
  if (web) sinks.push(web.calls);

  // Every output is closed even when one fails (a --har on a full disk); the first failure is thrown.
  const closeAll = async () => {
    const closed = await Promise.allSettled(sinks.map((s) => s.close()));
    if (opts.output && out) await new Promise<void>((resolve) => out!.end(() => resolve()));
    const failed = closed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  };

  return {
    sinks,
    onFailure: (fn) => (failed = fn),
    async finish(stats) {
      // The HTTP decoders see the end first, so their last exchanges precede the summary lines;
      // closing the tracker also closes the -f http and --har outputs (a failure is thrown by closeAll).
      web?.captureEnded(stats);
      await tracker?.close().catch(() => undefined);
      if (opts.format === 'jsonl' && main) {
        if (tracker) main.writeLine(JSON.stringify(modules.http!.httpSummaryRecord(tracker.stats)));
        main.writeLine(JSON.stringify(summaryRecord(stats)));
      }
      await closeAll();
      const report = [formatSummary(stats)];
      if (tracker) report.push(modules.http!.formatHttpSummary(tracker.stats));
      if (har) report.push(`tlstap: HAR with ${har.entries} entries written to ${har.path}`);
      if (pcapng && opts.pcapng !== '-') {
        report.push(
          `tlstap: pcapng: ${pcapng.packetsWritten} packets, ${pcapng.bytesWritten} bytes in ${opts.pcapng}; open it with:\n` +
            `  ${modules.pcapng!.wiresharkCommand(opts.pcapng!, pcapng.decodeAs)}\n  ${modules.pcapng!.wiresharkCommand(opts.pcapng!, pcapng.decodeAs, 'tshark')}`,
        );
      }
      return report.join('\n');
    },
    abort: async () => {
      await web?.shutdown();
      await closeAll();
    },
  };
}
