// `tlstap [options]`: a live capture. Its start is a race between two threads: the BPF program loads
// (libbpf and the kernel's verifier, on a worker thread) while the JS thread loads the code for
// discovery and outputs, finds the targets and opens the outputs. So this module imports only what
// comes before the load starts; the rest is imported once it runs.
import { endianness } from 'node:os';
import type { Writable } from 'node:stream';
import { describePaths, LoadedProgram, needsGoPrograms } from '../capture/session.js';
import type { CaptureSession, KernelSettings } from '../capture/session.js';
import type { BpfMachine } from '../capture/backend.js';
import type { KernelCounters } from '../events/counters.js';
import { encodeCountersRecord } from '../events/counters.js';
import type { BatchSink, CallPipeline } from '../capture/pipeline.js';
import { monotonicToWallOffsetNs } from '../capture/clock.js';
import { missingCapabilityMessage } from '../doctor/index.js';
import { EVENT_LAYOUT } from '../events/layout.js';
import type { CallSink, CaptureContext, CaptureStats, ConnectionInfo, TlsCall } from '../events/types.js';
import { addressFilter, parseIpAddress } from '../events/addresses.js';
import { checkDistinctPaths } from '../util/private-file.js';
import type { Outputs } from './outputs.js';
import type { RecordWriter } from '../record/index.js';
import type { Blindspot } from '../targets/blindspots.js';
import type { SkippedFile } from '../targets/discover.js';
import type { GoProgram } from '../targets/go.js';
import type { ProbeTarget } from '../targets/types.js';
import { catchStopSignals, onRepeatedStop, withStdoutGrace } from './signals.js';
import { setLongTimeout } from '../util/long-timeout.js';
import type { StopSignals } from './signals.js';
import { CliError } from './errors.js';
import { outputPaths } from './options.js';
import type { CaptureOptions } from './options.js';
import { tlstapVersion } from '../version.js';
import { checkRemoteOptions, localHost } from './capture-host.js';
import type { CaptureHost } from './capture-host.js';
import type { ResolvedTargets, TargetOptions } from './resolve-targets.js';

/** What a finished capture reports. */
export interface CaptureResult {
  stats: CaptureStats;
  targets: ProbeTarget[];
}

/** The options a capture applies in the kernel. */
export type KernelOptions = Pick<CaptureOptions, 'pid' | 'uid' | 'comm' | 'maxBytes' | 'ringBuffer' | 'port' | 'host' | 'btf'> & Partial<Pick<CaptureOptions, 'connections'>>;

/** Options for the building blocks a capture is made of, shared by `tlstap` and `tlstap demo`. */
export interface LiveCaptureParts {
  targets: ProbeTarget[];
  sinks: CallSink[];
  recorder?: BatchSink;
  keepCall?: (call: TlsCall) => boolean;
  /** Only these connections' records go out (besides --port/--host). */
  keepConnection?: (conn: ConnectionInfo) => boolean;
  /** --redact: credentials masked in the batches, before the recorder and the sinks. */
  redact?: boolean;
}

/** A running capture: a session feeding a pipeline. */
export class LiveCapture {
  /** The kernel counters read when the capture stopped. */
  finalCounters: KernelCounters | undefined;

  private constructor(
    readonly session: CaptureSession,
    readonly pipeline: CallPipeline,
    /** Delivery's pacing by the outputs (start()). */
    private readonly pacing: OutputPacing,
  ) {}

  /**
   * Loads the program for these options, off the JS thread: start it first, find the targets meanwhile,
   * then hand it to start().
   */
  static load(opts: KernelOptions, machine?: BpfMachine, goPrograms = false): Promise<LoadedProgram> {
    return LoadedProgram.load({ ...kernelSettings(opts), goPrograms }, undefined, machine);
  }

  /** Attaches `program` (loaded now if not given) and starts streaming. */
  static async start(parts: LiveCaptureParts, opts: KernelOptions, program?: LoadedProgram): Promise<LiveCapture> {
    const { CallPipeline } = await import('../capture/pipeline.js');
    const pipeline = new CallPipeline(parts.sinks, {
      recorder: parts.recorder,
      keepCall: parts.keepCall,
      keepConnection: parts.keepConnection,
      redact: parts.redact,
      // The kernel applies --port/--host to every connection whose addresses it knows at its first
      // call; connections that learn them later (a memory BIO) are decided here.
      keepAddress: addressFilter(opts.port, opts.host === undefined ? undefined : parseIpAddress(opts.host)),
    });
    let session: CaptureSession | undefined;
    // A pause that fails (the agent went away) ends the capture through the session's stop.
    const pacing = new OutputPacing(pipeline, (paused) => void session?.pause(paused).catch(() => undefined));
    // The pipeline copies whatever it keeps past a batch, so the batch's memory can go back to the
    // poller at once; the --record writer keeps batches until they are written.
    const releaseBatches = parts.recorder === undefined;
    const onBatch = (batch: Buffer, count: number) => {
      pipeline.onBatch(batch, count);
      if (releaseBatches) session?.release(batch);
      pacing.afterBatch();
    };
    session = await (program ?? (await LoadedProgram.load({ ...kernelSettings(opts), goPrograms: needsGoPrograms(parts.targets) }))).attach(parts.targets, onBatch);
    return new LiveCapture(session, pipeline, pacing);
  }

  /** Stats so far (kernel counters read now). */
  async stats(): Promise<CaptureStats> {
    return { ...this.pipeline.stats(await this.session.counters()), spill: this.session.spill() };
  }

  /**
   * Detaches, drains the ring buffer into the sinks and resolves with the final stats.
   * The sinks stay open for a last word (the jsonl summary); close() closes them.
   */
  async stop(): Promise<CaptureStats> {
    const stalled = this.pacing.stopping();
    try {
      this.finalCounters = await this.session.stop();
    } finally {
      stalled();
      this.pipeline.flush();
    }
    return { ...this.pipeline.stats(this.finalCounters), spill: this.session.spill() };
  }

  /** Flushes and closes every sink and the recorder. */
  close(): Promise<void> {
    return this.pipeline.close();
  }
}

/** How long, once stopping, an output may take nothing before delivery stops waiting for it. */
const STOP_STALL_MS = 1000;

/**
 * Slow outputs pause delivery: records wait in the native spill (memory, then a file), and once
 * that is full in the ring buffer, where the kernel counts whatever does not fit. While stopping,
 * an output that takes nothing for STOP_STALL_MS (a stalled reader of stdout) no longer holds the
 * rest back: what is left is delivered, and that output buffers it or gives up (signals.ts).
 */
class OutputPacing {
  private paused = false;
  private pausedAt = 0;
  private unpaced = false;

  constructor(
    private readonly pipeline: CallPipeline,
    private readonly pause: (paused: boolean) => void,
  ) {}

  /** After each batch: pause while an output is behind, resume once every one caught up. */
  afterBatch(): void {
    const backlog = this.paused || this.unpaced ? undefined : this.pipeline.backlog();
    if (!backlog) return;
    this.set(true);
    void backlog.then(() => this.set(false));
  }

  /** The capture is stopping: watch for a stalled output; returns the end of the watch. */
  stopping(): () => void {
    const timer = setInterval(() => {
      if (!this.paused || performance.now() - this.pausedAt < STOP_STALL_MS) return;
      this.unpaced = true;
      this.set(false);
    }, STOP_STALL_MS / 4);
    return () => clearInterval(timer);
  }

  private set(paused: boolean): void {
    this.paused = paused;
    this.pausedAt = performance.now();
    this.pause(paused);
  }
}

/** The kernel's half of the options. */
function kernelSettings(opts: KernelOptions): KernelSettings {
  return {
    pid: opts.pid,
    uid: opts.uid,
    comm: opts.comm,
    maxCallBytes: opts.maxBytes,
    ringBufferBytes: opts.ringBuffer,
    btfPath: opts.btf,
    maxConnections: opts.connections,
    port: opts.port,
    host: opts.host === undefined ? undefined : parseIpAddress(opts.host),
  };
}

/** The capture context for live output: probed files and the clock offset. */
export function liveContext(targets: readonly ProbeTarget[], offsetNs = monotonicToWallOffsetNs()): CaptureContext & { offsetNs: bigint } {
  return { files: targets.map((t) => t.displayPath), wallClockNs: (mono) => mono + offsetNs, offsetNs };
}

function describeTargets(targets: readonly ProbeTarget[]): string {
  return targets
    .map((t) => `  ${t.displayPath} (${t.flavour}${t.version ? ` ${t.version}` : ''}): ${t.functions.map((f) => f.name).join(', ')}`)
    .join('\n');
}

/** The header of a --record file: versions, layout, probed files, clock, host and settings. */
export function recordHeader(opts: CaptureOptions, ctx: ReturnType<typeof liveContext>, host: CaptureHost['info']) {
  return {
    tlstapVersion: tlstapVersion(),
    createdAt: new Date().toISOString(),
    layout: EVENT_LAYOUT as unknown as Record<string, unknown>,
    littleEndian: endianness() === 'LE',
    files: [...ctx.files],
    monotonicToWallNs: ctx.offsetNs.toString(),
    host,
    // `redacted`: the records hold masked credentials (--redact masks before recording).
    settings: { pid: opts.pid ?? null, uid: opts.uid ?? null, comm: opts.comm ?? null, maxBytes: opts.maxBytes, redacted: opts.redact, connections: opts.connections },
  };
}

/** Milestones of a start in ms since the process started, printed when TLSTAP_TIMING is set. */
function startTimeline(enabled: boolean): { mark(name: string): void; line(): string } {
  const marks: string[] = [];
  return {
    mark: (name) => void (enabled && marks.push(`${name} ${Math.round(performance.now())}`)),
    line: () => {
      if (!enabled) return '';
      const cpu = process.cpuUsage();
      return `tlstap: timing (ms since start): ${marks.join(', ')}; cpu ${Math.round((cpu.user + cpu.system) / 1000)} ms\n`;
    },
  };
}

/** `tlstap [options]`: capture until a signal, --duration, or the output closing. */
export async function runCapture(opts: CaptureOptions, stderr: Writable = process.stderr): Promise<CaptureResult> {
  // A reader of stderr that goes away (`2>&1 | head -1`) must not keep the files from being finished.
  stderr.on('error', () => undefined);
  checkRemoteOptions(opts);
  // With --remote the privileges that count are the agent's, on the other machine.
  const missing = opts.remote === undefined ? missingCapabilityMessage() : undefined;
  if (missing) throw new CliError(missing);
  if (endianness() !== 'LE') throw new CliError('tlstap reads its records as little-endian; this big-endian machine is not supported yet');
  checkDistinctPaths([...outputPaths(opts), ...(opts.record === undefined ? [] : [{ what: '--record', path: opts.record }])]);
  const signals = catchStopSignals((s, count) => onRepeatedStop(s, count, signals, stderr));
  const timeline = startTimeline(process.env.TLSTAP_TIMING !== undefined);
  timeline.mark('modules loaded');
  try {
    const host = opts.remote === undefined ? localHost(resolveLocally) : await startRemote({ ...opts, remote: opts.remote }, stderr, timeline);
    try {
      return await captureUntilStopped(opts, host, signals, stderr, timeline);
    } finally {
      const code = await host.close();
      if (code !== null && code !== 0) stderr.write(`tlstap: warning: the agent exited with status ${code}\n`);
    }
  } finally {
    signals.release();
  }
}

/** This machine's discovery, its code loaded on first use. */
async function resolveLocally(opts: TargetOptions): Promise<ResolvedTargets> {
  return (await import('./resolve-targets.js')).resolveTargetsReporting(opts);
}

/** Starts the agent for --remote; its steps are told with -v. */
async function startRemote(opts: CaptureOptions & { remote: string }, stderr: Writable, timeline: ReturnType<typeof startTimeline>): Promise<CaptureHost> {
  const { remoteHost } = await import('./remote-host.js');
  const { host } = await remoteHost(opts, (line) => {
    if (opts.verbose || line.startsWith('tlstap:')) stderr.write(`${line.startsWith('tlstap:') ? '' : 'tlstap: '}${line}\n`);
  });
  timeline.mark('agent started');
  return host;
}

async function captureUntilStopped(opts: CaptureOptions, host: CaptureHost, signals: StopSignals, stderr: Writable, timeline: ReturnType<typeof startTimeline>): Promise<CaptureResult> {
  // The program loads (kernel BTF, verifier) while the targets are found; with --package it waits
  // for them, as they choose the uid the kernel filters on, and so does an agent's one load (Go's
  // programs are loaded only when a Go program is found, which would take a second load).
  const loadEarly = opts.package === undefined && host.machine?.opensOnce !== true;
  let loading: Promise<LoadedProgram> | undefined = loadEarly ? LiveCapture.load(opts, host.machine) : undefined;
  const discardProgram = async () => loading?.then((p) => p.close(), () => undefined);
  if (loading !== undefined) timeline.mark('load started');
  // Read while the targets are found (their code loads too: host.resolve).
  const loadingCode = captureCode();
  loadingCode.catch(() => undefined);

  let code: CaptureCode;
  let outputs: Outputs;
  let ctx: ReturnType<typeof liveContext>;
  let targets: ProbeTarget[];
  let goPrograms: GoProgram[];
  let blindspots: Blindspot[];
  let kernelOpts: CaptureOptions = opts;
  try {
    let skipped: SkippedFile[];
    // The flavour and version (a scan of each library's read-only data) are shown only by --verbose.
    let uid: number | undefined;
    let storeWarning: string | undefined;
    ({ targets, skipped, goPrograms, blindspots, uid, storeWarning } = await host.resolve({ pid: opts.pid, lib: opts.lib, flavour: opts.verbose }));
    timeline.mark('targets found');
    if (storeWarning !== undefined) stderr.write(`tlstap: warning: files analysed afresh, not from earlier runs: ${storeWarning} (remove it; tlstap makes it again)\n`);
    kernelOpts = { ...opts, uid: opts.uid ?? uid };
    // Go's programs cost the verifier ~150 ms, so the load started meanwhile is without them; a Go
    // program among the targets has it made again with them.
    const withGo = needsGoPrograms(targets);
    if (withGo && loading !== undefined) {
      await discardProgram();
      loading = undefined;
    }
    loading ??= LiveCapture.load(kernelOpts, host.machine, withGo);
    void loading.then(() => timeline.mark('program loaded'), () => undefined);
    code = await loadingCode;
    stderr.write(code.startNotes(skipped, blindspots));
    stderr.write(code.formatGoNotice(goPrograms, 'tlstap: warning: '));
    ctx = liveContext(targets, await host.clockOffsetNs());
    outputs = await code.openOutputs(opts, ctx, (line) => stderr.write(`${line}\n`));
    timeline.mark('outputs open');
  } catch (err) {
    await discardProgram();
    throw err;
  }
  let recorder: RecordWriter | undefined;
  let recorderFailed = false;
  let capture: LiveCapture | undefined;
  try {
    recorder = opts.record
      ? await (await import('../record/index.js')).RecordWriter.create(opts.record, recordHeader(kernelOpts, ctx, host.info), {
          onError: (err) => {
            recorderFailed = true;
            stderr.write(`tlstap: ${err.message}; the recording stops here, the capture goes on\n`);
          },
        })
      : undefined;
    // What the start waits for once the targets are known: the rest of the load, then the attach.
    const started = performance.now();
    const program = await loading!;
    capture = await LiveCapture.start({ targets, sinks: outputs.sinks, recorder, redact: opts.redact }, kernelOpts, program);
    timeline.mark('attached');
    for (const path of capture.session.goWithoutCookies) {
      stderr.write(`tlstap: warning: Go program ${path}: its crypto/tls is not captured: Go's probes need attach cookies (kernel 5.15 or later)\n`);
    }
    for (const what of capture.session.ambiguousProbes) {
      stderr.write(`tlstap: warning: without attach cookies (kernel before 5.15) calls of ${what} cannot be told apart: their records name no file\n`);
    }
    if (program.paths.btf === undefined) {
      stderr.write('tlstap: warning: no kernel BTF: every byte is captured, socket addresses are unknown; pass --btf FILE to have them\n');
    }
    stderr.write(
      `tlstap: capturing (${capture.session.probeCount} probes attached in ${Math.round(performance.now() - started)} ms); Ctrl-C to stop\n` +
        (opts.verbose ? `${describeTargets(targets)}\n${describePaths(program.paths, program.multiLinks)}\n` : '') +
        timeline.line(),
    );
  } catch (err) {
    await discardProgram();
    await recorder?.close().catch(() => undefined);
    await outputs.abort();
    throw err;
  }

  // The capture goes on while any output (the recording included) can still take what it captures.
  const onAllFailed = (fn: (message: string) => void) =>
    outputs.onFailure((message, allFailed) => {
      if (allFailed && (recorder === undefined || recorderFailed)) fn(message);
    });
  // A library replaced on disk (a package upgrade) is probed again in its new file; -p follows one process's maps.
  const live = capture;
  const stopWatching =
    opts.pid === undefined && host.watchesFiles ? code.watchReplacedFiles(targets, (t, index) => live.session.attachFile(t, index), (line) => stderr.write(`${line}\n`)) : undefined;
  const stopReason = await waitForStop(opts, capture, signals, onAllFailed, stderr, code.startProgress, host.lost);
  stopWatching?.();
  const waiting = capture.session.spill();
  const spilled = waiting && waiting.bytes > 0 ? ` and the spill (${code.formatSpillNow(waiting)})` : '';
  stderr.write(`tlstap: stopping (${stopReason}): detaching ${capture.session.probeCount} probes, draining the ring buffer${spilled}\n`);
  let stats: CaptureStats | undefined;
  let failure: unknown;
  try {
    stats = await capture.stop();
  } catch (err) {
    failure = err;
    stats = capture.pipeline.stats();
  }
  // Every output gets its end even when stopping failed: what was captured is not thrown away.
  try {
    // The recording ends with the kernel counters, so its replay reports the same losses.
    if (recorder && capture.finalCounters) {
      const counters = encodeCountersRecord(capture.finalCounters, await host.monotonicNs());
      const framed = Buffer.alloc(4 + counters.length);
      framed.writeUInt32LE(counters.length);
      counters.copy(framed, 4);
      recorder.writeBatch(framed, 1);
    }
    await recorder?.close();
  } catch (err) {
    failure ??= err;
  }
  // A reader of stdout that stalls does not hold the files back for long.
  const usesStdout = (opts.format !== 'none' && opts.output === undefined) || opts.pcapng === '-';
  const { report, failures } = await withStdoutGrace(outputs.finish(stats), usesStdout, stderr);
  stderr.write(`${report}\n${code.runNotes(capture.pipeline, { pid: opts.pid, blindspots, targets })}${goSummary(goPrograms, code.goProgramMessage)}`);
  if (failure) throw failure;
  if (failures.length > 0) throw new CliError(`not every output is complete: ${failures.join('; ')}`);
  return { stats, targets };
}

/** The summary's word on the Go programs found at start: their TLS is in none of the figures above. */
function goSummary(programs: readonly GoProgram[], message: (p: GoProgram) => string): string {
  return programs.map((p) => `tlstap: not captured: ${message(p)}\n`).join('');
}

/** The code a capture runs once its program is loading: outputs, notes, Go's messages, the watches. */
async function captureCode() {
  const [outputs, report, go, output, watch, progress] = await Promise.all([
    import('./outputs.js'),
    import('./report.js'),
    import('../targets/go.js'),
    import('../output/index.js'),
    import('./library-watch.js'),
    import('./progress.js'),
  ]);
  return {
    openOutputs: outputs.openOutputs,
    startNotes: report.startNotes,
    runNotes: report.runNotes,
    formatGoNotice: go.formatGoNotice,
    goProgramMessage: go.goProgramMessage,
    formatSpillNow: output.formatSpillNow,
    watchReplacedFiles: watch.watchReplacedFiles,
    startProgress: progress.startProgress,
  };
}
type CaptureCode = Awaited<ReturnType<typeof captureCode>>;

/** Resolves with what ended the capture: a signal, the duration, or an output failing. */
function waitForStop(
  opts: CaptureOptions,
  capture: LiveCapture,
  signals: StopSignals,
  onOutputFailure: (fn: (message: string) => void) => void,
  stderr: Writable,
  startProgress: CaptureCode['startProgress'],
  lost?: Promise<Error>,
): Promise<string> {
  return new Promise((resolve) => {
    const cancels: (() => void)[] = [];
    let stopped = false;
    const done = (reason: string) => {
      if (stopped) return;
      stopped = true;
      for (const cancel of cancels) cancel();
      resolve(reason);
    };
    void signals.first.then(done);
    void lost?.then((err) => done(`the remote machine is gone: ${err.message}`));
    if (opts.duration !== undefined) cancels.push(setLongTimeout(() => done(`${opts.duration} s elapsed`), opts.duration * 1000));
    onOutputFailure((message) => done(message));
    if (opts.verbose) cancels.push(startProgress(() => capture.stats(), (line) => stderr.write(line)));
  });
}
