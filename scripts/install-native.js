#!/usr/bin/env node
// npm's install step for the published package (package.json "install"): keeps the prebuilt addon
// for this platform when it loads, and only when none does builds one from native/ with node-gyp
// (which then needs a C++ compiler and libbpf-dev, libelf-dev, zlib1g-dev). In a clone (tsconfig.json
// is there) it does nothing: `npm run build` builds everything.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(join(root, 'tsconfig.json'))) process.exit(0);

const prebuilt = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'tlstap.node');
let problem = `no prebuilt addon for ${process.platform}-${process.arch}`;
if (existsSync(prebuilt)) {
  try {
    createRequire(import.meta.url)(prebuilt);
    process.exit(0);
  } catch (error) {
    problem = `${prebuilt} does not load: ${String(error.message).split('\n')[0]}`;
  }
}
console.error(`tlstap: ${problem}; building the addon from source (needs a C++ compiler and libbpf-dev, libelf-dev, zlib1g-dev)`);
// npm puts its own node-gyp on PATH for install scripts.
const result = spawnSync('node-gyp', ['rebuild', '--directory', join(root, 'native')], { stdio: 'inherit' });
if (result.status !== 0) {
  console.error('tlstap: building the addon failed; tlstap is installed but cannot capture (see `tlstap doctor`)');
}
// The package stays installed either way: replay, libs and doctor work without the addon.
process.exit(0);
