// Output files: written synchronously where writes never wait (a regular file, /dev/null), through
// Node's asynchronous stream elsewhere (a FIFO); every byte in order either way, errors reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { WriteStream, mkdtempSync, openSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchWriter, releasesChunksOnCallback } from '../src/output/batch.js';
import { FileWriteStream, createPrivateWriteStream } from '../src/util/private-file.js';

const dir = mkdtempSync(join(tmpdir(), 'tlstap-private-file-'));

/** Writes `parts` through a BatchWriter on `out` and closes both. */
async function writeAll(out: ReturnType<typeof createPrivateWriteStream>, parts: Buffer[]): Promise<void> {
  const writer = new BatchWriter(out);
  for (const part of parts) {
    writer.reserve(part.length);
    writer.buf.set(part, writer.pos);
    writer.pos += part.length;
    writer.commit();
    if (writer.needsDrain) await writer.drained();
  }
  await writer.close();
  await new Promise<void>((resolve) => out.end(() => resolve()));
}

test('a regular file and /dev/null get the synchronous stream; 20 MiB of parts arrive whole and in order, 0600', async () => {
  const path = join(dir, 'out.bin');
  const out = createPrivateWriteStream(path);
  assert.ok(out instanceof FileWriteStream);
  assert.ok(releasesChunksOnCallback(out), 'its chunks are reused');
  const parts = Array.from({ length: 400 }, (_, i) => randomBytes(1000 + ((i * 7919) % 100_000)));
  await writeAll(out, parts);
  assert.ok(readFileSync(path).equals(Buffer.concat(parts)));
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const devNull = createPrivateWriteStream('/dev/null');
  assert.ok(devNull instanceof FileWriteStream);
  await writeAll(devNull, parts);
});

test('a FIFO gets the asynchronous stream, and its reader gets every byte', async () => {
  const fifo = join(dir, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const reader = spawn('sha256sum', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
  let digest = '';
  reader.stdout.on('data', (b: Buffer) => (digest += b.toString()));
  const out = createPrivateWriteStream(fifo);
  assert.ok(out instanceof WriteStream && !(out instanceof FileWriteStream));
  const parts = Array.from({ length: 50 }, () => randomBytes(100_000));
  await writeAll(out, parts);
  await new Promise((resolve) => reader.once('close', resolve));
  const { createHash } = await import('node:crypto');
  assert.equal(digest.split(' ')[0], createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
});

test('a failing synchronous write (ENOSPC) becomes the stream error the batch writer reports', async () => {
  const out = new FileWriteStream(openSync('/dev/full', 'w'));
  let reported: NodeJS.ErrnoException | undefined;
  const writer = new BatchWriter(out, { onClosed: (e) => (reported = e) });
  writer.writeString('x'.repeat(300_000));
  writer.commit();
  await writer.close();
  assert.equal(reported?.code, 'ENOSPC');
  assert.equal(writer.error?.code, 'ENOSPC');
});
