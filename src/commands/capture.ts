import type { Writable } from 'node:stream';
import { CaptureSession } from '../capture/session.js';
import type { KernelCounters } from '../capture/session.js';
import { CallPipeline } from '../capture/pipeline.js';
import type { BatchSink } from '../capture/pipeline.js';
import { monotonicToWallOffsetNs } from '../capture/clock.js';
import { missingCapabilityMessage } from '../doctor/index.js';
import { EVENT_LAYOUT } from '../events/layout.js';
import type { CallSink, CaptureContext, CaptureStats, ConnectionInfo, TlsCall } from '../events/types.js';
import { parseIpAddress } from '../events/addresses.js';
import { formatStatsLine } from '../output/index.js';
import { openOutputs } from './outputs.js';
import { RecordWriter } from '../record/index.js';
import { dedupeTargets, fileTarget, processTargets, systemTargets, TargetError } from '../targets/index.js';
import type { ProbeTarget } from '../targets/index.js';
import { CliError } from './errors.js';
import type { CaptureOptions } from './options.js';
import { hostInfo, tlstapVersion } from '../version.js';

/** What a finished capture reports. */
export interface CaptureResult {
  stats: CaptureStats;
  targets: ProbeTarget[];
}

/** Finds the files to probe for these options; errors say what was looked for. */
export async function resolveTargets(opts: Pick<CaptureOptions, 'pid' | 'lib'>): Promise<ProbeTarget[]> {
  const found = opts.pid !== undefined ? await processTargets(opts.pid) : await systemTargets();
  for (const lib of opts.lib) found.push(await fileTarget(lib, 'lib-option'));
  const targets = dedupeTargets(found).filter((t) => t.functions.length > 0);
  if (targets.length === 0) {
    const where = opts.pid !== undefined ? `process ${opts.pid}` : 'this system';
    throw new TargetError(`no TLS library with SSL_read/SSL_write found in ${where}`, {
      hint: 'name one with --lib PATH (a libssl.so or a program with OpenSSL linked in)',
    });
  }
  return targets;
}

/** The options a capture applies in the kernel. */
export type KernelOptions = Pick<CaptureOptions, 'pid' | 'uid' | 'comm' | 'maxBytes' | 'ringBuffer' | 'port' | 'host'>;

/** Options for the building blocks a capture is made of, shared by `tlstap` and `tlstap demo`. */
export interface LiveCaptureParts {
  targets: ProbeTarget[];
  sinks: CallSink[];
  recorder?: BatchSink;
  keepCall?: (call: TlsCall) => boolean;
}

/** A running capture: a session feeding a pipeline. */
export class LiveCapture {
  private constructor(
    readonly session: CaptureSession,
    readonly pipeline: CallPipeline,
  ) {}

  /** Loads, attaches and starts streaming. */
  static start(parts: LiveCaptureParts, opts: KernelOptions): LiveCapture {
    const host = opts.host === undefined ? undefined : parseIpAddress(opts.host);
    const pipeline = new CallPipeline(parts.sinks, {
      recorder: parts.recorder,
      keepCall: parts.keepCall,
      keepConnection: addressFilter(opts.port, opts.host),
    });
    const session = CaptureSession.open(
      parts.targets,
      {
        pid: opts.pid,
        uid: opts.uid,
        comm: opts.comm,
        maxCallBytes: opts.maxBytes,
        ringBufferBytes: opts.ringBuffer,
        port: opts.port,
        host,
      },
      pipeline.onBatch,
    );
    return new LiveCapture(session, pipeline);
  }

  /** Stats so far (kernel counters read now). */
  stats(): CaptureStats {
    return this.pipeline.stats(this.session.counters());
  }

  /**
   * Detaches, drains the ring buffer into the sinks and resolves with the final stats.
   * The sinks stay open for a last word (the jsonl summary); close() closes them.
   */
  async stop(): Promise<CaptureStats> {
    let counters: KernelCounters | undefined;
    try {
      counters = await this.session.stop();
    } finally {
      this.pipeline.flush();
    }
    return this.pipeline.stats(counters);
  }

  /** Flushes and closes every sink and the recorder. */
  close(): Promise<void> {
    return this.pipeline.close();
  }
}

/**
 * The user-space half of --port/--host (the kernel filters the calls; this filters the
 * connection records): a connection matches when its local or remote side does.
 */
export function addressFilter(port?: number, host?: string): ((conn: ConnectionInfo) => boolean) | undefined {
  if (port === undefined && host === undefined) return undefined;
  const wanted = host === undefined ? undefined : parseIpAddress(host);
  const sameHost = (ip: string) => {
    const parsed = parseIpAddress(ip);
    return parsed !== undefined && wanted !== undefined && parsed.bytes.equals(wanted.bytes);
  };
  return (conn) => {
    const { local, remote } = conn;
    if (!local || !remote) return false;
    if (port !== undefined && local.port !== port && remote.port !== port) return false;
    return wanted === undefined || sameHost(local.ip) || sameHost(remote.ip);
  };
}

/** The capture context for live output: probed files and the clock offset. */
export function liveContext(targets: readonly ProbeTarget[]): CaptureContext & { offsetNs: bigint } {
  const offsetNs = monotonicToWallOffsetNs();
  return { files: targets.map((t) => t.displayPath), wallClockNs: (mono) => mono + offsetNs, offsetNs };
}

function describeTargets(targets: readonly ProbeTarget[]): string {
  return targets
    .map((t) => `  ${t.displayPath} (${t.flavour}${t.version ? ` ${t.version}` : ''}): ${t.functions.map((f) => f.name).join(', ')}`)
    .join('\n');
}

/** `tlstap [options]`: capture until a signal, --duration, or the output closing. */
export async function runCapture(opts: CaptureOptions, stderr: Writable = process.stderr): Promise<CaptureResult> {
  const missing = missingCapabilityMessage();
  if (missing) throw new CliError(missing);
  const targets = await resolveTargets(opts);
  const ctx = liveContext(targets);

  const outputs = await openOutputs({ ...opts, pcapng: opts.pcapng }, ctx);
  let recorder: RecordWriter | undefined;
  let capture: LiveCapture | undefined;
  try {
    recorder = opts.record
      ? await RecordWriter.create(opts.record, {
          tlstapVersion: tlstapVersion(),
          createdAt: new Date().toISOString(),
          layout: EVENT_LAYOUT as unknown as Record<string, unknown>,
          littleEndian: true,
          files: [...ctx.files],
          monotonicToWallNs: ctx.offsetNs.toString(),
          host: hostInfo(),
          settings: { pid: opts.pid ?? null, uid: opts.uid ?? null, comm: opts.comm ?? null, maxBytes: opts.maxBytes },
        })
      : undefined;
    const started = performance.now();
    capture = LiveCapture.start({ targets, sinks: outputs.sinks, recorder }, opts);
    stderr.write(
      `tlstap: capturing (${capture.session.probeCount} probes attached in ${Math.round(performance.now() - started)} ms); Ctrl-C to stop\n` +
        (opts.verbose ? `${describeTargets(targets)}\n` : ''),
    );
  } catch (err) {
    await recorder?.close().catch(() => undefined);
    await outputs.abort();
    throw err;
  }

  const stopReason = await waitForStop(opts, capture, (fn) => outputs.onFailure(fn), stderr);
  // Detaching waits on the kernel (a fraction of a second per probe, shared across threads).
  stderr.write(`tlstap: stopping (${stopReason}): detaching ${capture.session.probeCount} probes, draining the ring buffer\n`);
  let stats: CaptureStats;
  try {
    stats = await capture.stop();
  } finally {
    // Sinks get their final lines and close in finish(); the recorder closes with the pipeline.
    await recorder?.close();
  }
  const report = await outputs.finish(stats);
  stderr.write(`${report}\n`);
  return { stats, targets };
}

/** Resolves with what ended the capture: a signal, the duration, or the output closing. */
function waitForStop(
  opts: CaptureOptions,
  capture: LiveCapture,
  onOutputFailure: (fn: (message: string) => void) => void,
  stderr: Writable,
): Promise<string> {
  return new Promise((resolve) => {
    const timers: NodeJS.Timeout[] = [];
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const done = (reason: string) => {
      for (const t of timers) clearTimeout(t);
      for (const s of signals) process.removeListener(s, handlers[s]!);
      resolve(reason);
    };
    const handlers: Partial<Record<NodeJS.Signals, () => void>> = {};
    for (const s of signals) {
      handlers[s] = () => done(s);
      process.once(s, handlers[s]!);
    }
    if (opts.duration !== undefined) timers.push(setTimeout(() => done(`${opts.duration} s elapsed`), opts.duration * 1000));
    onOutputFailure((message) => done(message));
    if (opts.verbose) {
      let previous = capture.stats();
      const tick = () => {
        const now = capture.stats();
        stderr.write(`${formatStatsLine(now, previous, 1000)}\n`);
        previous = now;
        timers.push(setTimeout(tick, 1000).unref());
      };
      timers.push(setTimeout(tick, 1000).unref());
    }
  });
}

