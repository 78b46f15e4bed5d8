import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { BatchWriter, releasesChunksOnCallback } from '../src/output/batch.js';
import type { OutputStream } from '../src/output/batch.js';
import { FileWriteStream, openPrivateFile } from '../src/util/private-file.js';

/** A slice the stream was handed, a copy of its bytes at that moment, and its callback. */
interface HeldWrite {
  slice: Uint8Array;
  copy: Buffer;
  callback?: (error?: Error | null) => void;
}

/**
 * A stream that calls back only when the test says so (release()), and checks then that nobody
 * wrote over a slice while the stream held it. It counts the distinct buffers it was handed.
 */
class HoldingStream implements OutputStream {
  readonly received: Buffer[] = [];
  readonly buffers = new Set<ArrayBufferLike>();
  overwritten = 0;
  private held: HeldWrite[] = [];

  write(slice: Uint8Array, callback?: (error?: Error | null) => void): boolean {
    const copy = Buffer.from(slice);
    this.received.push(copy);
    this.buffers.add(slice.buffer);
    this.held.push({ slice, copy, callback });
    return true;
  }

  /** Calls back for every slice held, after checking each is still what it was when written. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (!Buffer.from(h.slice.buffer, h.slice.byteOffset, h.slice.byteLength).equals(h.copy)) this.overwritten++;
      h.callback?.();
    }
  }

  on(): unknown {
    return this;
  }
  once(): unknown {
    return this;
  }
  removeListener(): unknown {
    return this;
  }
}

/** The bytes of unit i: different for every unit, so a unit written over or out of order shows. */
function unitBytes(i: number, size: number): Buffer {
  const bytes = Buffer.alloc(size);
  for (let k = 0; k < size; k++) bytes[k] = (i * 7 + k) & 255;
  return bytes;
}

/** Writes units first .. first + count - 1 through the writer, releasing the stream's slices after each when asked. */
function writeUnits(writer: BatchWriter, stream: HoldingStream, first: number, count: number, size: number, release: boolean): Buffer[] {
  const expected: Buffer[] = [];
  for (let i = first; i < first + count; i++) {
    const bytes = unitBytes(i, size);
    writer.reserve(size);
    writer.buf.set(bytes, writer.pos);
    writer.pos += size;
    writer.commit();
    expected.push(bytes);
    if (release) stream.release();
  }
  return expected;
}

/** Closes the writer, releasing the last slices it hands over so close() can resolve. */
async function closeReleasing(writer: BatchWriter, stream: HoldingStream): Promise<void> {
  const closing = writer.close();
  stream.release();
  await closing;
}

test('batch: steady output reuses its chunks once the stream has called back: 64 MiB through at most 3 buffers', async () => {
  const stream = new HoldingStream();
  const writer = new BatchWriter(stream, { reuseChunks: true });
  const expected = writeUnits(writer, stream, 0, 65536, 1024, true);
  await closeReleasing(writer, stream);
  assert.equal(stream.overwritten, 0);
  assert.ok(Buffer.concat(stream.received).equals(Buffer.concat(expected)), 'every byte, in order');
  assert.ok(stream.buffers.size <= 3, `${stream.buffers.size} chunk buffers for 64 MiB`);
});

test('batch: a chunk is never written over while the stream still holds a slice of it', async () => {
  const stream = new HoldingStream();
  const writer = new BatchWriter(stream, { reuseChunks: true });
  // 8 MiB the stream does not call back for: every chunk stays in use.
  const held = writeUnits(writer, stream, 0, 8192, 1024, false);
  const chunksWhileHeld = stream.buffers.size;
  assert.ok(chunksWhileHeld >= 32, `${chunksWhileHeld} chunk buffers for 8 MiB held`);
  stream.release();
  assert.equal(stream.overwritten, 0);
  // Once called back, those chunks serve the next 8 MiB: no new buffer (the one being filled at
  // the release may not have been handed over yet, so it shows up now).
  const after = writeUnits(writer, stream, 8192, 8192, 1024, true);
  await closeReleasing(writer, stream);
  assert.equal(stream.overwritten, 0);
  assert.ok(stream.buffers.size <= chunksWhileHeld + 1, `${stream.buffers.size - chunksWhileHeld} new buffers`);
  assert.ok(Buffer.concat(stream.received).equals(Buffer.concat([...held, ...after])), 'every byte, in order');
});

test('batch: units bigger than a chunk get a buffer of their own, and the pool still serves the rest', async () => {
  const stream = new HoldingStream();
  const writer = new BatchWriter(stream, { reuseChunks: true });
  const expected = [
    ...writeUnits(writer, stream, 0, 300, 1024, true),
    ...writeUnits(writer, stream, 300, 3, 600 * 1024, true),
    ...writeUnits(writer, stream, 303, 3000, 1000, true),
  ];
  await closeReleasing(writer, stream);
  assert.equal(stream.overwritten, 0);
  assert.ok(Buffer.concat(stream.received).equals(Buffer.concat(expected)));
  assert.ok(stream.buffers.size <= 3 + 3, `${stream.buffers.size} buffers`);
});

test('batch: chunks are reused only for streams that are done with them at their callback', async () => {
  const file = createWriteStream('/dev/null');
  assert.equal(releasesChunksOnCallback(file), true);
  await new Promise((resolve) => file.end(resolve));
  assert.equal(releasesChunksOnCallback(process.stdout), true);
  // A PassThrough calls back while the chunk still waits in its read queue.
  assert.equal(releasesChunksOnCallback(new PassThrough()), false);
  assert.equal(releasesChunksOnCallback(new HoldingStream()), false);
});

test('batch: an in-memory stream keeps every chunk it was handed intact', async () => {
  const stream = new HoldingStream();
  const writer = new BatchWriter(stream);
  const expected = writeUnits(writer, stream, 0, 4096, 1024, true);
  await closeReleasing(writer, stream);
  assert.equal(stream.overwritten, 0);
  assert.ok(Buffer.concat(stream.received).equals(Buffer.concat(expected)));
  assert.ok(stream.buffers.size >= 16, `${stream.buffers.size} buffers: none reused`);
});

test('batch: a file takes each write at once, so one unit of 64 MiB is written through the same two chunks', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'tlstap-batch-')), 'out');
  const file = new FileWriteStream(openPrivateFile(path));
  const writer = new BatchWriter(file);
  const chunks = new Set<ArrayBufferLike>();
  const expected: Buffer[] = [];
  // One unit (a record with a large body) in 48 KiB steps, handed on whenever a write's worth is batched.
  for (let i = 0; i < 64 * 1024 * 1024 / (48 * 1024); i++) {
    const bytes = unitBytes(i, 48 * 1024);
    writer.reserve(bytes.length);
    writer.buf.set(bytes, writer.pos);
    writer.pos += bytes.length;
    writer.writeOutIfFull();
    chunks.add(writer.buf.buffer);
    expected.push(bytes);
  }
  writer.commit();
  await writer.close();
  await new Promise((resolve) => file.end(resolve));
  assert.ok(readFileSync(path).equals(Buffer.concat(expected)), 'every byte, in order');
  // The chunk being filled, and the one whose bytes were handed on just before it filled up.
  assert.ok(chunks.size <= 2, `${chunks.size} chunk buffers for 64 MiB`);
});

test('batch: a write error of a file taken at once ends the output with that error', async () => {
  const errors: NodeJS.ErrnoException[] = [];
  const file = new FileWriteStream(openSync('/dev/full', 'w'));
  const writer = new BatchWriter(file, { onClosed: (e) => errors.push(e) });
  writer.writeString('x'.repeat(300 * 1024));
  writer.commit();
  assert.equal(errors[0]?.code, 'ENOSPC');
  assert.equal(writer.error?.code, 'ENOSPC');
  writer.writeString('more');
  writer.commit();
  await writer.close();
  assert.equal(errors.length, 1);
  file.destroy();
});
