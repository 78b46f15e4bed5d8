import { constants, createWriteStream, fchmodSync, fstatSync, openSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { dirname } from 'node:path';

/** An output file that cannot be opened as asked, with what to do about it. */
export class OutputFileError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`cannot write ${path}: ${reason}`);
    this.name = 'OutputFileError';
  }
}

/**
 * Opens `path` for writing with mode 0600 (captures hold passwords and tokens), truncating it,
 * and refuses to follow a symlink planted at the path.
 */
export function openPrivateFile(path: string): number {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    // An existing file keeps its old mode otherwise. Devices (-o /dev/null) and pipes are left as they are.
    if (fstatSync(fd).isFile()) fchmodSync(fd, 0o600);
    return fd;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    switch (code) {
      case 'ENOENT':
        throw new OutputFileError(path, `directory ${dirname(path)} does not exist`);
      case 'EACCES':
      case 'EROFS':
        throw new OutputFileError(path, `directory ${dirname(path)} is not writable (${code})`);
      case 'ELOOP':
        throw new OutputFileError(path, 'it is a symbolic link; tlstap does not write through links');
      case 'EISDIR':
        throw new OutputFileError(path, 'it is a directory');
      default:
        throw new OutputFileError(path, (err as Error).message);
    }
  }
}

/** A write stream on a private file (see openPrivateFile). */
export function createPrivateWriteStream(path: string): WriteStream {
  return createWriteStream(path, { fd: openPrivateFile(path) });
}
