// Linux errno numbers by name, for the agent's error statuses (the same on x86_64 and arm64).
import { constants } from 'node:os';

const NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** The symbolic name of a Linux errno (ENOENT), or `errno N`. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}
