// multipart/form-data bodies (RFC 7578) split into parts, for HAR postData.params.

import { looksLikeText } from '../http/body.js';

/** One part of a multipart/form-data body. */
export interface FormPart {
  name: string;
  /** The file name, for a file field. */
  fileName?: string;
  /** The part's Content-Type, when it has one. */
  contentType?: string;
  /** The part's bytes. */
  data: Buffer;
  /** Whether the bytes are text (UTF-8 without NUL bytes). */
  text: boolean;
}

/** The boundary parameter of a multipart Content-Type, or undefined. */
export function multipartBoundary(contentType: string): string | undefined {
  if (!/^multipart\/form-data\s*;/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

/** A Content-Disposition parameter (`name`, `filename`), quoted or not. */
function dispositionParam(header: string, key: string): string | undefined {
  const m = new RegExp(`;\\s*${key}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i').exec(header);
  if (m === null) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/**
 * The parts of a whole multipart/form-data body; undefined when the body does not parse (cut,
 * or not what its Content-Type says), so the caller can keep it as one text.
 */
export function parseMultipart(body: Buffer, boundary: string): FormPart[] | undefined {
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const parts: FormPart[] = [];
  let pos = body.indexOf(delimiter);
  if (pos < 0) return undefined;
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts;
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) return undefined;
    const headEnd = body.indexOf('\r\n\r\n', pos + 2, 'latin1');
    if (headEnd < 0) return undefined;
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headEnd + 4);
    if (next < 0) return undefined;
    const head = body.toString('utf8', pos + 2, headEnd);
    let disposition = '';
    let contentType: string | undefined;
    for (const line of head.split('\r\n')) {
      const colon = line.indexOf(':');
      const key = line.slice(0, colon).trim().toLowerCase();
      if (key === 'content-disposition') disposition = line.slice(colon + 1).trim();
      else if (key === 'content-type') contentType = line.slice(colon + 1).trim();
    }
    const name = dispositionParam(disposition, 'name');
    if (name === undefined) return undefined;
    const data = body.subarray(headEnd + 4, next);
    const part: FormPart = { name, data, text: looksLikeText(data) };
    const fileName = dispositionParam(disposition, 'filename');
    if (fileName !== undefined) part.fileName = fileName;
    if (contentType !== undefined) part.contentType = contentType;
    parts.push(part);
    pos = next + 2;
  }
}
