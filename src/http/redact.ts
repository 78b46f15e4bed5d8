// --redact: one function that masks credentials in headers, used by every output format.

import type { HttpHeader } from './types.js';

/** What a masked value becomes. */
export const REDACTED = '[REDACTED]';

/** Header names that carry credentials: exact names, and API-key / token / secret patterns. */
const SENSITIVE_NAMES = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'apikey',
  'api-key',
  'x-api-key',
  'x-apikey',
  'x-auth',
  'x-auth-key',
  'x-csrf-token',
  'x-xsrf-token',
  'x-amz-security-token',
  'x-goog-api-key',
  'private-token',
]);
const SENSITIVE_PATTERN = /(^|[-_])(api[-_]?key|token|secret|password|passwd|session[-_]?id|credentials?|signature)$/i;

/** Whether a header (by name) holds credentials that --redact masks. */
export function isSensitiveHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return SENSITIVE_NAMES.has(lower) || SENSITIVE_PATTERN.test(lower);
}

/**
 * The value to show for a header when redacting: Authorization keeps its scheme (`Bearer
 * [REDACTED]`), Cookie keeps cookie names, Set-Cookie keeps the name and attributes; anything
 * else sensitive is masked whole.
 */
export function redactHeaderValue(name: string, value: string): string {
  switch (name.toLowerCase()) {
    case 'authorization':
    case 'proxy-authorization': {
      const space = value.indexOf(' ');
      return space > 0 ? `${value.slice(0, space)} ${REDACTED}` : REDACTED;
    }
    case 'cookie':
      return value
        .split(';')
        .map((pair) => {
          const eq = pair.indexOf('=');
          return eq > 0 ? `${pair.slice(0, eq).trim()}=${REDACTED}` : REDACTED;
        })
        .join('; ');
    case 'set-cookie': {
      const parts = value.split(';');
      const first = parts[0]!;
      const eq = first.indexOf('=');
      parts[0] = eq > 0 ? `${first.slice(0, eq).trim()}=${REDACTED}` : REDACTED;
      return parts.join(';');
    }
    default:
      return REDACTED;
  }
}

/**
 * Headers as an output should show them: with `redact`, credentials (and HTTP/2 fields the sender
 * marked never-indexed) are masked; without it, the same array is returned.
 */
export function redactHeaders(headers: HttpHeader[], redact: boolean): HttpHeader[] {
  if (!redact) return headers;
  let out: HttpHeader[] | undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (!(h.sensitive === true || isSensitiveHeader(h.name)) || h.name.startsWith(':')) continue;
    out ??= headers.slice();
    out[i] = { name: h.name, value: redactHeaderValue(h.name, h.value), ...(h.sensitive ? { sensitive: true } : {}) };
  }
  return out ?? headers;
}
