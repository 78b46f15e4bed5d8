// `--web [HOST:]PORT`: a live web view of the exchanges and connections, served by tlstap itself.
// It is one more listener of the HTTP tracker; after the input ends it stays open (so a replay or
// a finished capture can be browsed) until Ctrl-C, then removes its spool.

import type { CallSink, CaptureContext, CaptureStats } from '../events/types.js';
import type { HttpTracker } from '../http/tracker.js';
import type { HttpListener, HttpStats } from '../http/types.js';
import type { WebAddress } from './address.js';
import { startWebServer } from './server.js';
import { WebStore } from './store.js';

export { DEFAULT_WEB_ADDRESS, parseWebAddress } from './address.js';
export type { WebAddress } from './address.js';

/** Options of openWebView. */
export interface WebViewOptions {
  redact: boolean;
  tracker: HttpTracker;
  /** Where to say where the view is (default stderr). */
  log?: (line: string) => void;
  /** Close at once when the input ends instead of staying open until SIGINT/SIGTERM (tests, embedding). */
  closeAtEnd?: boolean;
  /** The spool's directory (default the system temp dir). */
  spoolDir?: string;
}

/** A running web view. */
export interface WebView extends HttpListener {
  readonly url: string;
  /** Takes every call and connection event (a pipeline sink), for the pcapng download. */
  readonly calls: CallSink;
  /** The capture's final counters, shown as losses on the page. */
  captureEnded(stats: CaptureStats): void;
  /** Stops serving and removes the spool. */
  shutdown(): Promise<void>;
}

/** Starts the web view on `address`, subscribed to `opts.tracker`; prints its URL. */
export async function openWebView(address: WebAddress, ctx: CaptureContext, opts: WebViewOptions): Promise<WebView> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const store = new WebStore(ctx, { redact: opts.redact, spoolDir: opts.spoolDir });
  let server;
  try {
    server = await startWebServer(store, address, ctx, { redact: opts.redact });
  } catch (err) {
    store.remove();
    const e = err as NodeJS.ErrnoException;
    throw new Error(`--web cannot listen on ${address.host}:${address.port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (pick another port, or 0 for any free one)' : ''}`);
  }
  log(`tlstap: web view at ${server.url} (only with this token; Ctrl-C stops)`);
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= server.close().finally(() => store.remove());
    return stopping;
  };
  // Stop signals end the view (and remove the spool) unless a capture handles them already.
  const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = () => void shutdown().then(() => process.exit(process.exitCode ?? 0));
  const listenForStop = () => STOP_SIGNALS.forEach((s) => process.once(s, onSignal));
  if (STOP_SIGNALS.every((s) => process.listenerCount(s) === 0)) listenForStop();
  const view: WebView = {
    url: server.url,
    calls: store.calls,
    exchange: (ex) => store.exchange(ex),
    fallback: (f) => store.fallback(f),
    raw: (call, conn) => store.raw(call, conn),
    end: (stats: HttpStats) => store.end(stats),
    captureEnded: (stats) => {
      store.losses.capture = stats;
      store.onChange?.();
    },
    shutdown,
    close: async () => {
      if (opts.closeAtEnd) return shutdown();
      log(`tlstap: the input ended; the web view stays at ${server.url} until Ctrl-C`);
      STOP_SIGNALS.forEach((s) => process.removeListener(s, onSignal));
      listenForStop();
    },
  };
  opts.tracker.subscribe(view);
  return view;
}
