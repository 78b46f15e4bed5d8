import { readFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from './util/package-root.js';

let version: string | undefined;

/** tlstap's version, from package.json. */
export function tlstapVersion(): string {
  version ??= (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/** The machine a capture ran on, for recordings and file headers. */
export function hostInfo(): { kernel: string; arch: string; hostname: string } {
  return { kernel: release(), arch: process.arch, hostname: hostname() };
}
