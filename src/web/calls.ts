// Every call and connection event of the run, for the web view's pcapng download: the events go
// to the spool as they come (bigints tagged, bytes beside them), a span per event stays in memory,
// and an export replays the chosen connections' events through the pcapng writer.

import { Writable } from 'node:stream';
import type { CallSink, CaptureContext, ConnectionEvent, TlsCall } from '../events/types.js';
import { createPcapngStreamSink } from '../pcapng/index.js';
import type { Spool, SpoolSpan } from './spool.js';

interface StoredEvent {
  /** The connection id (undefined: a call the connection tracker could not place). */
  conn: number | undefined;
  meta: SpoolSpan;
  data?: SpoolSpan;
}

const tag = (_key: string, value: unknown) => (typeof value === 'bigint' ? { $big: value.toString() } : value);
const untag = (_key: string, value: unknown) =>
  value !== null && typeof value === 'object' && '$big' in value ? BigInt((value as { $big: string }).$big) : value;

/** A CallSink that spools every call and connection event, to export them as pcapng later. */
export class CallArchive implements CallSink {
  private readonly events: StoredEvent[] = [];
  /** Events past `max`: captured, not kept for the pcapng download. */
  notKept = 0;

  constructor(
    private readonly spool: Spool,
    private readonly ctx: CaptureContext,
    private readonly max = 4_000_000,
  ) {}

  /** Takes one call. */
  write(call: TlsCall): void {
    if (this.full()) return;
    const data = this.spool.append(call.data);
    const meta = this.spool.append(Buffer.from(JSON.stringify({ ...call, data: undefined }, tag)));
    this.events.push({ conn: call.conn?.id, meta, data });
  }

  /** Takes a connection's open or close. */
  connection(event: ConnectionEvent): void {
    if (this.full()) return;
    this.events.push({ conn: event.conn.id, meta: this.spool.append(Buffer.from(JSON.stringify(event, tag))) });
  }

  /** Nothing to flush: the spool is written synchronously. */
  async close(): Promise<void> {}

  /** pcapng of every event of these connections (ids as the web view's connection keys), in capture order. */
  async pcapng(connKeys: ReadonlySet<string>): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(chunk);
        done();
      },
    });
    const sink = createPcapngStreamSink(out, this.ctx, {}, 'web view');
    for (const e of this.events) {
      if (e.conn === undefined || !connKeys.has(String(e.conn))) continue;
      const parsed = JSON.parse(this.spool.read(e.meta).toString('utf8'), untag) as (TlsCall & { type?: undefined }) | ConnectionEvent;
      if (e.data === undefined) sink.connection(parsed as ConnectionEvent);
      else sink.write({ ...(parsed as TlsCall), data: this.spool.read(e.data) });
    }
    await sink.close();
    return Buffer.concat(chunks);
  }

  private full(): boolean {
    if (this.events.length < this.max) return false;
    this.notKept++;
    return true;
  }
}
