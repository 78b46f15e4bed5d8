// A read-only view of a machine's files and /proc, the same for this machine and for one reached
// through the agent: what discovery (src/targets/android.ts) and the ELF reader read through.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import type { PositionalFile } from '../elf/index.js';

/** What a view's stat tells about a path. */
export interface ViewStat {
  type: 'file' | 'dir' | 'symlink' | 'other';
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  uid: number;
}

/** A directory entry; `type` is undefined when the file system does not say (stat it). */
export interface ViewDirent {
  name: string;
  type?: ViewStat['type'];
}

/** Read-only access to one machine's files; failures carry a Node-style `code` (ENOENT, EACCES). */
export interface FileView {
  /** Where the files are, for messages: "local", "agent on HOST". */
  readonly where: string;
  stat(path: string, options?: { follow?: boolean }): Promise<ViewStat>;
  readdir(path: string): Promise<ViewDirent[]>;
  readlink(path: string): Promise<string>;
  /** Up to `length` bytes at `offset` of a file, without keeping it open (fewer only at its end). */
  read(path: string, offset: number, length: number): Promise<Buffer>;
  /** The whole file (a /proc file too, whose size says 0), at most `max` bytes (default 4 MiB). */
  readFile(path: string, max?: number): Promise<Buffer>;
  /** Opens a regular file for positional reads (the ELF reader's input). */
  openFile(path: string): Promise<PositionalFile>;
}

/** Default and largest readFile size. */
export const READ_FILE_MAX = 4 << 20;

const S_IFMT = 0o170000;

/** The type a mode says. */
export function modeType(mode: number): ViewStat['type'] {
  const t = mode & S_IFMT;
  return t === 0o100000 ? 'file' : t === 0o040000 ? 'dir' : t === 0o120000 ? 'symlink' : 'other';
}

/** A file that is larger than a readFile allows. */
export class FileTooLargeError extends Error {
  override readonly name = 'FileTooLargeError';
  readonly code = 'EFBIG';
  constructor(path: string, max: number) {
    super(`${path} holds more than ${max} bytes`);
  }
}

/** This machine's files, all looked up under `root` (default /): the same view the agent's --root gives. */
export function localView(root = '/'): FileView {
  const base = root.replace(/\/+$/, '');
  const full = (path: string): string => {
    if (!path.startsWith('/')) throw Object.assign(new Error(`not an absolute path: ${path}`), { code: 'EINVAL' });
    return base + path;
  };
  return {
    where: base === '' ? 'local' : `local root ${base}`,
    async stat(path, options = {}) {
      const st = await (options.follow === false ? lstat : stat)(full(path), { bigint: true });
      return { type: modeType(Number(st.mode)), dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, uid: Number(st.uid) };
    },
    async readdir(path) {
      const entries = await readdir(full(path), { withFileTypes: true });
      return entries.map((d) => {
        const type = d.isFile() ? 'file' : d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : 'other';
        return { name: d.name, type };
      });
    },
    readlink: (path) => readlink(full(path)),
    async read(path, offset, length) {
      const handle = await open(full(path), 'r');
      try {
        const buf = Buffer.alloc(length);
        let done = 0;
        for (;;) {
          const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
          if (bytesRead === 0 || (done += bytesRead) === length) break;
        }
        return buf.subarray(0, done);
      } finally {
        await handle.close();
      }
    },
    async readFile(path, max = READ_FILE_MAX) {
      const handle = await open(full(path), 'r');
      try {
        const buf = Buffer.allocUnsafe(max + 1);
        let done = 0;
        for (;;) {
          const { bytesRead } = await handle.read(buf, done, max + 1 - done, null);
          if (bytesRead === 0) break;
          done += bytesRead;
          if (done > max) throw new FileTooLargeError(path, max);
        }
        return buf.subarray(0, done);
      } finally {
        await handle.close();
      }
    },
    async openFile(path) {
      const fd = openSync(full(path), 'r');
      try {
        const st = fstatSync(fd);
        if (!st.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EISDIR' });
        return {
          size: st.size,
          read: (buf: Buffer, offset: number, length: number, position: number) => readSync(fd, buf, offset, length, position),
          close: () => closeSync(fd),
        };
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    },
  };
}
