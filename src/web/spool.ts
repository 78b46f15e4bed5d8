// The web view's spool: an append-only temp file (mode 0600, in a 0700 directory) that holds the
// bodies and details of what was captured, so the server keeps only a small index in memory and
// reads the rest back on demand. It is removed when the view closes, or at the latest at exit.

import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where a piece of the spool is. */
export interface SpoolSpan {
  at: number;
  len: number;
}

/** An append-only private temp file, read back by offset. */
export class Spool {
  /** Bytes written so far. */
  size = 0;
  readonly path: string;
  private readonly dir: string;
  private fd: number | undefined;
  private readonly onExit = () => this.remove();

  constructor(parent: string = tmpdir()) {
    this.dir = mkdtempSync(join(parent, 'tlstap-web-'));
    this.path = join(this.dir, 'spool');
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    process.once('exit', this.onExit);
  }

  /** Appends `bytes`; returns where they are. */
  append(bytes: Uint8Array): SpoolSpan {
    if (this.fd === undefined) throw new Error('the web view spool is closed');
    const at = this.size;
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, at + done);
    this.size += bytes.length;
    return { at, len: bytes.length };
  }

  /** The bytes of a span written before. */
  read(span: SpoolSpan): Buffer {
    if (this.fd === undefined) throw new Error('the web view spool is closed');
    const out = Buffer.allocUnsafe(span.len);
    let done = 0;
    while (done < span.len) {
      const n = readSync(this.fd, out, done, span.len - done, span.at + done);
      if (n === 0) break;
      done += n;
    }
    return done === span.len ? out : out.subarray(0, done);
  }

  /** Closes and deletes the file and its directory (idempotent). */
  remove(): void {
    process.removeListener('exit', this.onExit);
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
