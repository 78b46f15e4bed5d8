import type { Writable } from 'node:stream';
import type { CallSink, CaptureContext, CaptureStats } from '../events/types.js';
import type { HttpTracker } from '../http/index.js';
import { createFormatSink, formatBytes, formatSummary, isBrokenPipe, summaryRecord } from '../output/index.js';
import { describeWriteError } from '../output/batch.js';
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
  /** -f was given on the command line (not the default). */
  formatGiven?: boolean;
  /** Colour on the stdout format; decided from the terminal when absent. */
  color?: boolean;
}

/** What finish() tells: the stderr report, and the outputs that did not get everything. */
export interface OutputsResult {
  report: string;
  /** One line per output that failed (a reader of stdout going away is not a failure of the run). */
  failures: string[];
}

/** Every output of a run, opened before capturing (so a bad path fails first). */
export interface Outputs {
  sinks: CallSink[];
  /**
   * Calls `fn` when an output fails (its disk full, its reader gone); `allFailed` says whether
   * any output is left to write to. The failure was reported on stderr already.
   */
  onFailure(fn: (message: string, allFailed: boolean) => void): void;
  /** After the input ended: final lines, every output flushed and closed; the report and failures. */
  finish(stats: CaptureStats): Promise<OutputsResult>;
  /** Closes everything without final lines (the run failed). */
  abort(): Promise<void>;
}

/** One output's fate: when it failed, why, and how much had been delivered by then. */
interface OutputState {
  name: string;
  failure?: string;
  /** The reader of stdout went away: a normal way for `tlstap | head` to end. */
  readerGone?: boolean;
  at?: { calls: number; bytes: number };
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

/**
 * Opens the stdout format (unless `-w -` has stdout), `-o`, `--har` and `-w` outputs. An output that
 * fails is reported at once through `report` and the others go on (README: "When an output fails").
 */
export async function openOutputs(opts: OutputOptions, ctx: CaptureContext, report: (line: string) => void = () => undefined): Promise<Outputs> {
  const modules = await outputModules(opts);
  const { httpOutput } = modules;
  let listener: ((message: string, allFailed: boolean) => void) | undefined;
  const states: OutputState[] = [];
  // Counts what reached the outputs, so a failed one can be told what it missed.
  const delivered = { calls: 0, bytes: 0 };
  const sinks: CallSink[] = [
    {
      write: (call) => {
        delivered.calls++;
        delivered.bytes += call.data.length;
      },
      close: () => Promise.resolve(),
    },
  ];
  const watch = (name: string, stdout = false) => {
    const state: OutputState = { name };
    states.push(state);
    return (error: NodeJS.ErrnoException, message?: string) => {
      if (state.failure !== undefined) return;
      state.failure = message ?? `${name} stopped: ${describeWriteError(error)}`;
      state.readerGone = stdout && isBrokenPipe(error);
      state.at = { ...delivered };
      const allFailed = states.every((s) => s.failure !== undefined);
      if (!allFailed) report(`tlstap: ${state.failure}; the other outputs go on`);
      listener?.(state.failure, allFailed);
    };
  };
  // One tracker decodes HTTP for every HTTP output; those listen to it, and it closes them.
  const tracker: HttpTracker | undefined = modules.http ? new modules.http.HttpTracker() : undefined;

  let pcapng: PcapngSink | undefined;
  if (opts.pcapng !== undefined) {
    const failed = watch(opts.pcapng === '-' ? 'pcapng to stdout' : opts.pcapng, opts.pcapng === '-');
    pcapng = await modules.pcapng!.createPcapngSink(opts.pcapng, ctx, { onClosed: failed });
    sinks.push(pcapng);
  }

  // With `-w -` stdout carries pcapng; a stdout format then needs -o.
  let main: FormatSink | undefined;
  let out: Writable | undefined;
  if (opts.format !== 'none' && (opts.pcapng !== '-' || opts.output !== undefined)) {
    out = opts.output ? createPrivateWriteStream(opts.output) : process.stdout;
    const color = opts.color ?? (!opts.output && process.stdout.isTTY === true && !process.env.NO_COLOR);
    const onClosed = watch(opts.output ?? 'stdout', opts.output === undefined);
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

  const harFailed = opts.har === undefined ? undefined : watch(opts.har);
  const har = opts.har === undefined ? undefined : modules.har!.createHarSink(opts.har, ctx, { redact: opts.redact, tracker: tracker!, onClosed: harFailed });
  const web = modules.web && (await modules.web.openWebView(opts.web === true ? modules.web.DEFAULT_WEB_ADDRESS : opts.web!, ctx, { redact: opts.redact, tracker: tracker! }));
  // After the jsonl sink: a call's `data` line comes before the `http` records it completes.
  if (tracker) sinks.push(tracker);
  if (web) sinks.push(web.calls);

  // Every output is closed even when one fails (a --har on a full disk): its failure is in its state.
  const closeAll = async () => {
    await Promise.allSettled(sinks.map((s) => s.close()));
    if (opts.output && out) await new Promise<void>((resolve) => out!.end(() => resolve()));
  };

  return {
    sinks,
    onFailure: (fn) => (listener = fn),
    async finish(stats) {
      // The HTTP decoders see the end first, so their last exchanges precede the summary lines;
      // closing the tracker also closes the -f http and --har outputs (their failures are in their states).
      web?.captureEnded(stats);
      await tracker?.close().catch(() => undefined);
      if (opts.format === 'jsonl' && main) {
        if (tracker) main.writeLine(JSON.stringify(modules.http!.httpSummaryRecord(tracker.stats)));
        main.writeLine(JSON.stringify(summaryRecord(stats)));
      }
      await closeAll();
      const lines = [formatSummary(stats)];
      if (tracker) lines.push(modules.http!.formatHttpSummary(tracker.stats));
      const failed = (name: string) => states.some((s) => s.name === name && s.failure !== undefined);
      if (har && !failed(har.path)) lines.push(`tlstap: HAR with ${har.entries} entries written to ${har.path}`);
      if (pcapng && opts.pcapng !== '-' && !failed(opts.pcapng!)) {
        lines.push(
          `tlstap: pcapng: ${pcapng.packetsWritten} packets, ${pcapng.bytesWritten} bytes in ${opts.pcapng}; open it with:\n` +
            `  ${modules.pcapng!.wiresharkCommand(opts.pcapng!, pcapng.decodeAs)}\n  ${modules.pcapng!.wiresharkCommand(opts.pcapng!, pcapng.decodeAs, 'tshark')}`,
        );
      }
      const failures: string[] = [];
      for (const s of states) {
        if (s.failure === undefined || s.at === undefined) continue;
        const missed = `${delivered.calls - s.at.calls} calls (${formatBytes(delivered.bytes - s.at.bytes)}) captured after that never reached it`;
        lines.push(`warning: ${s.failure}; ${missed}`);
        if (!s.readerGone) failures.push(s.failure);
      }
      return { report: lines.join('\n'), failures };
    },
    abort: async () => {
      await web?.shutdown();
      await closeAll();
    },
  };
}
