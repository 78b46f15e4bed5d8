// The README's option table is the one commander prints from: the declaration in src/commands/options.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { captureOptions, optionsTable } from '../src/commands/options.js';

test('the README lists every capture option exactly as declared', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const table = optionsTable(captureOptions());
  assert.ok(
    readme.includes(table),
    `README.md's option table is out of date; replace it with:\n\n${table}\n\n(printed by node -e "import('./dist/src/commands/options.js').then(m => console.log(m.optionsTable(m.captureOptions())))")`,
  );
});
