// The stdout formats' names and descriptions, apart from their code: the CLI's options need them
// before any output is made (and without loading the formats).

/** The stdout formats with a one-line description each, for the CLI help. */
export const FORMATS = {
  text: 'a header line per call, then the plaintext; control and non-UTF-8 bytes shown as \\xNN',
  hex: 'a header line per call, then a hex dump with an ASCII column',
  jsonl: 'one JSON object per call (payload as text when UTF-8, else base64), a summary line at the end',
} as const;

/** An output format name. */
export type FormatName = keyof typeof FORMATS;

/** The format names, in help order. */
export const FORMAT_NAMES = Object.keys(FORMATS) as FormatName[];
