// One conversation with a tlstap-agent over a byte pipe: requests with ids, responses matched to
// them, record batches and log lines handed to listeners; the agent ends when its stdin closes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { errnoName } from './errno.js';
import { FrameDecoder, OP, ProtocolError, decodeResponse, encodeFrame, encodeRequest } from './protocol.js';
import type { Frame } from './protocol.js';

/**
 * Runs a shell command with its stdin, stdout and stderr as pipes, in its own process group: Ctrl-C
 * at the terminal reaches tlstap only, which then stops the agent cleanly (DETACH, STOP, BYE) before
 * the pipe closes; an ssh or adb in tlstap's group would die at once.
 */
export function spawnShell(shellCommand: string): ChildProcess {
  return spawn('/bin/sh', ['-c', shellCommand], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
}

/** A request the agent answered with an error: the op, the errno and the agent's message. */
export class AgentError extends Error {
  override readonly name = 'AgentError';
  readonly op: string;
  readonly errno: number;
  readonly code: string;
  constructor(op: string, errno: number, message: string, what?: string) {
    super(`${op}${what === undefined ? '' : ` ${what}`}: ${message} (${errnoName(errno)})`);
    this.op = op;
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** The agent stopped answering: its pipe closed, it exited or it sent a bad stream. */
export class AgentGoneError extends Error {
  override readonly name = 'AgentGoneError';
}

const OP_NAMES = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));

/** Stderr kept from the agent (or the remote command) for error messages. */
const STDERR_TAIL = 4096;

interface Pending {
  op: number;
  what: string | undefined;
  resolve: (result: Buffer) => void;
  reject: (err: Error) => void;
}

/**
 * Speaks the agent protocol over a writable (the agent's stdin) and a readable (its stdout).
 * Requests may overlap: each carries an id and its response may come in any order.
 */
export class AgentConnection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private failure: Error | undefined;
  private onGone: (err: Error) => void = () => undefined;
  /** Settles when the agent stops answering (its pipe closed, it exited, a bad stream), with why. */
  readonly gone: Promise<Error> = new Promise((resolve) => (this.onGone = resolve));
  private stderrTail = '';
  private exited: Promise<number | null>;
  /** Called with each record batch (the payload of a TFRM frame) and its record count. */
  onRecords: (batch: Buffer, count: number) => void = () => undefined;
  /** Called with each log line the agent sends. */
  onLog: (level: number, text: string) => void = () => undefined;

  private constructor(
    private readonly input: Writable,
    output: Readable,
    private readonly child: ChildProcess | undefined,
  ) {
    output.on('data', (chunk: Buffer) => this.receive(chunk));
    output.on('end', () => this.fail(new AgentGoneError(this.goneMessage('the agent closed its output'))));
    output.on('error', (err) => this.fail(new AgentGoneError(this.goneMessage(`reading from the agent failed: ${err.message}`))));
    // A write after the agent is gone fails here; the pending requests learn it from fail().
    input.on('error', (err) => this.fail(new AgentGoneError(this.goneMessage(`writing to the agent failed: ${err.message}`))));
    this.exited = child === undefined ? Promise.resolve(null) : new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? (signal === null ? null : 128)));
    });
    child?.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    child?.on('error', (err) => this.fail(new AgentGoneError(`cannot run the remote command: ${err.message}`)));
  }

  /** Talks to an agent whose stdin and stdout are these streams (a local pipe). */
  static over(input: Writable, output: Readable): AgentConnection {
    return new AgentConnection(input, output, undefined);
  }

  /** Runs `shellCommand` with /bin/sh and talks to the agent it starts; its stderr is kept for messages. */
  static spawn(shellCommand: string): AgentConnection {
    const child = spawnShell(shellCommand);
    return new AgentConnection(child.stdin!, child.stdout!, child);
  }

  /**
   * Talks to the agent a running child became (the launcher's probe script exec'd it): `leftover` is
   * what its stdout held after the probe's lines, the start of the agent's frames.
   */
  static adopt(child: ChildProcess, leftover: Buffer): AgentConnection {
    const connection = new AgentConnection(child.stdin!, child.stdout!, child);
    if (leftover.length > 0) connection.receive(leftover);
    return connection;
  }

  /** What the agent (or the command that reached it) wrote on stderr lately. */
  get stderr(): string {
    return this.stderrTail;
  }

  /** Sends a request and resolves with its result; rejects with AgentError or AgentGoneError. */
  request(op: number, args?: Uint8Array, what?: string): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    if (this.nextId > 0xffffffff) this.nextId = 1;
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { op, what, resolve, reject });
      this.input.write(encodeFrame('request', id, encodeRequest(op, args)));
    });
  }

  /**
   * Says goodbye and closes the agent's stdin; resolves with its exit code (null over a plain pipe).
   * Closing stdin alone is enough for the agent to detach and exit: BYE only makes it prompt.
   */
  async close(timeoutMs = 5000): Promise<number | null> {
    if (!this.failure) {
      await this.request(OP.BYE).catch(() => undefined);
    }
    this.input.end();
    if (this.child === undefined) return null;
    const timer = setTimeout(() => this.child?.kill('SIGTERM'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      this.child?.kill('SIGTERM');
      return;
    }
    for (const frame of frames) this.dispatch(frame);
  }

  private dispatch(frame: Frame): void {
    if (frame.kind === 'records') {
      this.onRecords(frame.payload, frame.field);
      return;
    }
    if (frame.kind === 'log') {
      this.onLog(frame.field, frame.payload.toString('utf8'));
      return;
    }
    const waiting = frame.kind === 'response' ? this.pending.get(frame.field) : undefined;
    if (waiting === undefined) {
      this.fail(new ProtocolError(`the agent sent a ${frame.kind} frame for no request (id ${frame.field})`, 0));
      return;
    }
    this.pending.delete(frame.field);
    let response;
    try {
      response = decodeResponse(frame.payload);
    } catch (err) {
      waiting.reject(err as Error);
      return;
    }
    if (response.status === 0) waiting.resolve((response as { result: Buffer }).result);
    else {
      const name = OP_NAMES.get(waiting.op) ?? `op ${waiting.op}`;
      waiting.reject(new AgentError(name, -response.status, (response as { message: string }).message, waiting.what));
    }
  }

  private goneMessage(what: string): string {
    const tail = this.stderrTail.trim();
    return tail === '' ? what : `${what}; it said: ${tail.split('\n').slice(-3).join(' / ')}`;
  }

  private fail(err: Error): void {
    if (this.failure) return;
    try {
      this.decoder.end();
    } catch (cut) {
      if (!(err instanceof ProtocolError)) err = new AgentGoneError(`${err.message} (${(cut as Error).message})`);
    }
    this.failure = err;
    this.onGone(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
