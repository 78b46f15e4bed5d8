// The one error type target discovery throws.

/** Raised when a named file or process cannot be probed; `hint` says what to do instead. */
export class TargetError extends Error {
  /** A short suggestion for the user, printed after the message. */
  readonly hint?: string;
  /** The file or /proc entry the error is about, when there is one. */
  readonly path?: string;

  constructor(message: string, options: { hint?: string; path?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TargetError';
    if (options.hint !== undefined) this.hint = options.hint;
    if (options.path !== undefined) this.path = options.path;
  }
}

/** The errno code of a Node system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
