import type { DecodedCall, DecodedConn, DecoderOutput } from './assemble.js';
import type { ConnectionEvent, ConnectionInfo, TlsCall } from './types.js';
import { CONN_REASONS, EVENT_LAYOUT } from './layout.js';

/** Where tracked calls and connection records go. */
export interface TrackerOutput {
  call(call: TlsCall): void;
  connection(event: ConnectionEvent): void;
}

/** What the tracker counted. */
export interface TrackerStats {
  connections: number;
  /** Calls that arrived ahead of an earlier call of their connection and were held back. */
  reordered: number;
  /** Calls of a connection that never arrived (their records were dropped), skipped over. */
  missingCalls: number;
  /** Calls in which two different socket fds were used (the fd shown is the first). */
  fdConflicts: number;
  /** Connections whose open record was lost (their addresses are unknown). */
  missingOpens: number;
  /** Connections an address filter (--port/--host) left out because their addresses never became known. */
  unaddressedExcluded: number;
  /** Who they were: `comm (pid P, connection C): reason`, the first few. */
  unaddressedExcludedNames: string[];
  /**
   * Connections that went on under a new id while still open: the kernel's connection map evicted
   * their state (it was full), and their next call made a new one.
   */
  splitConnections: number;
}

interface Tracked {
  info: ConnectionInfo;
  comm: string;
  /** The sequence number of the next call to emit. */
  expected: number;
  waiting: Map<number, TlsCall>;
  /** Batches that ended while this connection waited for a missing call. */
  staleBatches: number;
  /** Whether its open record has gone out (an address filter may hold it back). */
  announced: boolean;
  /**
   * Calls held while an address filter waits for its addresses (a memory BIO learns its socket
   * after its first calls); undefined when not waiting.
   */
  held?: { calls: TlsCall[]; bytes: number; overflow: number };
  /** Batches it has waited for its socket without an address filter (see SOCKET_PATIENCE_BATCHES). */
  socketWait: number;
}

/** The reason of a connection whose socket may still show up: a memory BIO writes it right after its calls. */
const NO_FD_YET = CONN_REASONS[EVENT_LAYOUT.constants.REASON_NO_FD];

/** Bytes held per connection waiting for its addresses; calls beyond are skipped and counted as missing. */
const MAX_HELD_BYTES = 4 << 20;
/** How many excluded connections the summary names. */
const MAX_NAMED = 10;

/** What decides which connections go out. */
export interface TrackerFilters {
  /** Connections this rejects never go out (the embedding tool's own choice). */
  keep?: (conn: ConnectionInfo) => boolean;
  /** --port/--host: a connection without addresses yet is held until they are known. */
  address?: (conn: ConnectionInfo) => boolean;
}

/** Batches a connection may wait for a missing call before it is given up as dropped. */
const PATIENCE_BATCHES = 2;
/**
 * Batches a memory-BIO connection's calls wait, without an address filter, for the socket write
 * that follows them (microseconds later, so in the same or the next batch): its records then
 * carry the addresses from the first call on. After that they go out without.
 */
const SOCKET_PATIENCE_BATCHES = 2;

/**
 * Gives every call its connection (id, fd, addresses from the kernel's connection records) and
 * puts each connection's calls back in kernel order by their sequence numbers, even when
 * records of one connection were written on different CPUs.
 */
export class ConnectionTracker implements DecoderOutput {
  readonly stats: TrackerStats = {
    connections: 0,
    reordered: 0,
    missingCalls: 0,
    fdConflicts: 0,
    missingOpens: 0,
    unaddressedExcluded: 0,
    unaddressedExcludedNames: [],
    splitConnections: 0,
  };
  private readonly conns = new Map<number, Tracked>();
  /** The open connection of each (process, TLS object). */
  private readonly byObject = new Map<string, Tracked>();
  private readonly stalled = new Set<Tracked>();
  /** Connections whose calls wait briefly for their socket (no address filter). */
  private readonly awaitingSocket = new Set<Tracked>();
  /** The latest timestamp seen, for the close records written at the end. */
  private lastTsNs = 0n;

  /** `filters` decide whether a connection's records go out. */
  constructor(
    private readonly out: TrackerOutput,
    private readonly filters: TrackerFilters = {},
  ) {}

  /** A connection record from the kernel. */
  conn(d: DecodedConn): void {
    if (d.tsNs > this.lastTsNs) this.lastTsNs = d.tsNs;
    if (d.kind === 'exit') {
      for (const tracked of [...this.conns.values()]) {
        if (tracked.info.pid !== d.pid) continue;
        this.release(tracked);
        this.close(tracked, d.tsNs, 'the process exited');
      }
      return;
    }
    if (d.kind === 'close') {
      const tracked = this.conns.get(d.connId);
      if (!tracked) return;
      this.release(tracked);
      this.close(tracked, d.tsNs, d.reason);
      return;
    }
    const info: ConnectionInfo = { id: d.connId, pid: d.pid, ssl: d.ssl, fd: d.fd };
    if (d.local && d.remote) {
      info.local = d.local;
      info.remote = d.remote;
    } else if (d.reason) {
      info.unknownReason = d.reason;
    }
    const tracked = this.conns.get(d.connId);
    if (tracked) {
      tracked.info = info;
    } else {
      this.add({ info, comm: d.comm, expected: 0, waiting: new Map(), staleBatches: 0, announced: false, socketWait: 0 }, d.tsNs);
    }
    this.announce(this.conns.get(d.connId)!, d.tsNs);
  }

  /** A whole call from the decoder. */
  call(d: DecodedCall): void {
    if (d.call.tsNs > this.lastTsNs) this.lastTsNs = d.call.tsNs;
    let tracked = this.conns.get(d.connId);
    if (!tracked) {
      // Its open record was dropped: the connection is known by id only.
      this.stats.missingOpens++;
      this.stats.connections++;
      const info: ConnectionInfo = { id: d.connId, pid: d.call.pid, ssl: d.call.ssl, fd: d.fd, unknownReason: 'its open record was lost (ring buffer full)' };
      tracked = { info, comm: d.call.comm, expected: d.seq, waiting: new Map(), staleBatches: 0, announced: false, socketWait: 0 };
      this.add(tracked, d.call.tsNs);
      this.announce(tracked, d.call.tsNs);
    }
    if (d.fdConflict) this.stats.fdConflicts++;
    if (d.seq === tracked.expected) {
      this.emit(tracked, d.call);
      tracked.expected++;
      this.drain(tracked);
    } else if (d.seq > tracked.expected) {
      this.stats.reordered++;
      // Held past this batch, whose memory the poller gets back: keep a copy of the bytes.
      d.call.data = Buffer.from(d.call.data);
      tracked.waiting.set(d.seq, d.call);
      this.stalled.add(tracked);
    } else {
      // Arrived after its connection gave it up as dropped: late, but not lost.
      this.emit(tracked, d.call);
    }
  }

  /** Called after each batch: connections stuck on a missing call for too long move on. */
  endBatch(): void {
    for (const tracked of this.stalled) {
      if (++tracked.staleBatches >= PATIENCE_BATCHES) this.release(tracked);
    }
    for (const tracked of this.awaitingSocket) {
      if (++tracked.socketWait >= SOCKET_PATIENCE_BATCHES) this.announce(tracked, this.lastTsNs, true);
    }
  }

  /** The input has ended: every held call goes out, every connection still open is closed. */
  flush(): void {
    for (const tracked of [...this.conns.values()]) {
      this.release(tracked);
      this.close(tracked, this.lastTsNs, 'end of capture');
    }
  }

  /** A new connection; one still open on the same TLS object was evicted from the kernel's map. */
  private add(tracked: Tracked, tsNs: bigint): void {
    this.stats.connections++;
    this.conns.set(tracked.info.id, tracked);
    // Id 0 gathers the calls that came without a connection.
    if (tracked.info.id === 0) return;
    const key = `${tracked.info.pid}:${tracked.info.ssl}`;
    const earlier = this.byObject.get(key);
    if (earlier !== undefined) {
      this.stats.splitConnections++;
      this.release(earlier);
      this.close(earlier, tsNs, 'its kernel state was evicted (connection map full); it goes on under a new id');
    }
    this.byObject.set(key, tracked);
  }

  /** `force`: out without addresses, the wait for its socket is over. */
  private announce(tracked: Tracked, tsNs: bigint, force = false): void {
    if (tracked.announced) return;
    const { keep, address } = this.filters;
    if (keep && !keep(tracked.info)) return;
    if (address && !address(tracked.info)) {
      // Without addresses yet, the kernel sends its records so this can decide once they are known.
      if (!tracked.info.local) tracked.held ??= { calls: [], bytes: 0, overflow: 0 };
      else tracked.held = undefined;
      return;
    }
    if (!address && !force && !tracked.info.local && tracked.info.unknownReason === NO_FD_YET) {
      tracked.held ??= { calls: [], bytes: 0, overflow: 0 };
      this.awaitingSocket.add(tracked);
      return;
    }
    this.awaitingSocket.delete(tracked);
    tracked.announced = true;
    const held = tracked.held;
    tracked.held = undefined;
    // The open goes before the calls that waited for it.
    const first = held?.calls[0]?.tsNs;
    this.out.connection({ type: 'open', tsNs: first !== undefined && first < tsNs ? first : tsNs, conn: tracked.info, comm: tracked.comm });
    if (!held) return;
    held.calls.forEach((call, i) => {
      if (i === 0 && held.overflow > 0) call.callsMissedBefore = (call.callsMissedBefore ?? 0) + held.overflow;
      this.emit(tracked, call);
    });
    this.stats.missingCalls += held.overflow;
  }

  private emit(tracked: Tracked, call: TlsCall): void {
    if (!tracked.announced) {
      this.hold(tracked, call);
      return;
    }
    call.conn = tracked.info;
    this.out.call(call);
  }

  /** Keeps a call of a connection waiting for its addresses (a copy: the batch's memory goes back). */
  private hold(tracked: Tracked, call: TlsCall): void {
    const held = tracked.held;
    if (!held) return;
    // Past the bound the earliest calls stay and later ones are skipped: a hole the outputs are told of.
    if (held.bytes + call.data.length > MAX_HELD_BYTES || held.overflow > 0) {
      held.overflow++;
      return;
    }
    held.bytes += call.data.length;
    held.calls.push({ ...call, data: Buffer.from(call.data) });
  }

  private drain(tracked: Tracked): void {
    let next = tracked.waiting.get(tracked.expected);
    while (next) {
      tracked.waiting.delete(tracked.expected);
      this.emit(tracked, next);
      tracked.expected++;
      next = tracked.waiting.get(tracked.expected);
    }
    if (tracked.waiting.size === 0) {
      this.stalled.delete(tracked);
      tracked.staleBatches = 0;
    }
  }

  /** Emits every held call in order, skipping (and counting) the ones that never came. */
  private release(tracked: Tracked): void {
    const seqs = [...tracked.waiting.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const call = tracked.waiting.get(seq)!;
      const missed = seq - tracked.expected;
      // The consumers of a byte stream (HTTP, pcapng) must know the stream has a hole here.
      if (missed > 0) call.callsMissedBefore = missed;
      this.stats.missingCalls += missed;
      this.emit(tracked, call);
      tracked.expected = seq + 1;
    }
    tracked.waiting.clear();
    tracked.staleBatches = 0;
    this.stalled.delete(tracked);
  }

  private close(tracked: Tracked, tsNs: bigint, reason: string): void {
    // A connection that waited for its socket in vain still has its calls to give.
    if (this.awaitingSocket.has(tracked)) this.announce(tracked, tsNs, true);
    this.conns.delete(tracked.info.id);
    if (tracked.held) {
      const s = this.stats;
      s.unaddressedExcluded++;
      const info = tracked.info;
      if (s.unaddressedExcludedNames.length < MAX_NAMED) {
        s.unaddressedExcludedNames.push(`${tracked.comm} (pid ${info.pid}, connection ${info.id}): ${info.unknownReason ?? 'addresses not seen'}`);
      }
    }
    const key = `${tracked.info.pid}:${tracked.info.ssl}`;
    if (this.byObject.get(key) === tracked) this.byObject.delete(key);
    if (tracked.announced) this.out.connection({ type: 'close', tsNs, conn: tracked.info, comm: tracked.comm, reason });
  }
}
