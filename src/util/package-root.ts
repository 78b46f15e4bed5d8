import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json, build/ and native/ live), from this compiled file's place. */
export function packageRoot(): string {
  // dist/src/util/package-root.js -> three levels up
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}
