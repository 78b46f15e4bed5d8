/** Options for an ElfError besides the path and reason. */
export interface ElfErrorOptions {
  /** What the user can do about it, appended to the message. */
  hint?: string;
  /** The system error code (ENOENT, EACCES, ...) when a file operation failed. */
  code?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/** Any problem reading an ELF file: cannot open it, not ELF, truncated or corrupt. */
export class ElfError extends Error {
  /** The file that was being read. */
  readonly path: string;
  /** What was wrong, without the path. */
  readonly reason: string;
  /** What the user can do about it, if we know. */
  readonly hint?: string;
  /** The system error code when a file operation failed (ENOENT, EACCES, ...). */
  readonly code?: string;

  constructor(path: string, reason: string, options: ElfErrorOptions = {}) {
    super(
      options.hint === undefined ? `${path}: ${reason}` : `${path}: ${reason} (${options.hint})`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'ElfError';
    this.path = path;
    this.reason = reason;
    if (options.hint !== undefined) this.hint = options.hint;
    if (options.code !== undefined) this.code = options.code;
  }
}
