// The --web address: `[HOST:]PORT`, the host an IP address or `localhost` (default 127.0.0.1).

import { InvalidArgumentError } from '../commands/commander.js';
import { parseIpAddress } from '../events/addresses.js';

/** Where the web view listens. */
export interface WebAddress {
  host: string;
  /** 0: a free port chosen by the system. */
  port: number;
}

/** The address when --web is given without one: loopback, a free port. */
export const DEFAULT_WEB_ADDRESS: WebAddress = { host: '127.0.0.1', port: 0 };

/** Parses `8080`, `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`. */
export function parseWebAddress(text: string): WebAddress {
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d+)$/.exec(text.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new InvalidArgumentError('expected [HOST:]PORT, e.g. 8080, 127.0.0.1:8080 or [::1]:8080 (0: any free port)');
  let host = match[1] ?? DEFAULT_WEB_ADDRESS.host;
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host === 'localhost') host = '127.0.0.1';
  if (!parseIpAddress(host)) throw new InvalidArgumentError(`${host} is not an IPv4 or IPv6 address (nor localhost)`);
  return { host, port };
}
