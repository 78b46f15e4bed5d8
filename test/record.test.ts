// Tests for src/record/: the --record file format, its writer and its reader.
import { after, before, describe, it } from 'node:test';
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, link, lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BatchFormatError,
  MAX_FRAME_PAYLOAD,
  RECORD_FORMAT_VERSION,
  RecordFormatError,
  RecordWriteError,
  RecordWriter,
  encodeBatch,
  forEachBatchRecord,
  iterateBatchRecords,
  openRecordFile,
  validateBatch,
} from '../src/record/index.js';
import type { RecordDamage, RecordHeader, RecordReader, RecordStop } from '../src/record/index.js';

const HEADER: Omit<RecordHeader, 'formatVersion'> = {
  tlstapVersion: '0.1.0-test',
  createdAt: '2024-05-01T12:34:56.789Z',
  layout: { version: 1, size: 64, fields: { tsNs: [0, 8], pid: [8, 4] }, kinds: ['data', 'lost'] },
  littleEndian: true,
  files: ['/usr/lib/x86_64-linux-gnu/libssl.so.3', '/usr/bin/curl'],
  monotonicToWallNs: '1714566896789000000',
  host: { kernel: '6.8.0-test', arch: 'x64', hostname: 'probe-host' },
  settings: { maxBytes: 16384, pids: [1, 2], follow: false, note: 'ünïcödé ✓' },
};

/** mulberry32: a small seeded PRNG so failures can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

function randomBatch(rand: () => number, maxRecords: number, maxRecordSize: number): { batch: Buffer; count: number } {
  const records: Buffer[] = [];
  const n = randomInt(rand, 1, maxRecords);
  for (let i = 0; i < n; i++) {
    const r = Buffer.allocUnsafe(randomInt(rand, 0, maxRecordSize));
    for (let j = 0; j < r.length; j++) r[j] = Math.floor(rand() * 256);
    records.push(r);
  }
  return encodeBatch(records);
}

function spread(b: { batch: Buffer; count: number }): [Buffer, number] {
  return [b.batch, b.count];
}

interface Written {
  path: string;
  batches: { batch: Buffer; count: number }[];
  /** File offset where each frame starts, plus the file size at the end. */
  boundaries: number[];
  size: number;
}

async function writeRecording(path: string, batches: { batch: Buffer; count: number }[]): Promise<Written> {
  const writer = await RecordWriter.create(path, HEADER);
  const boundaries = [writer.bytesWritten];
  for (const b of batches) {
    writer.writeBatch(b.batch, b.count);
    boundaries.push(boundaries[boundaries.length - 1]! + 16 + b.batch.length);
  }
  await writer.close();
  assert.equal(writer.bytesWritten, boundaries[boundaries.length - 1]);
  return { path, batches, boundaries, size: writer.bytesWritten };
}

interface ReadBack {
  frames: { batch: Buffer; count: number; offset: number }[];
  stop: RecordStop;
  damaged: readonly RecordDamage[];
}

async function readAll(reader: RecordReader): Promise<ReadBack> {
  const frames: { batch: Buffer; count: number; offset: number }[] = [];
  for await (const f of reader.batches()) frames.push({ batch: Buffer.from(f.batch), count: f.count, offset: f.offset });
  return { frames, stop: reader.stopReason(), damaged: reader.damaged() };
}

async function readPath(path: string): Promise<ReadBack> {
  const reader = await openRecordFile(path);
  try {
    return await readAll(reader);
  } finally {
    await reader.close();
  }
}

/** The offset just past the frame whose header is at `at`. */
function offsetAfter(file: Buffer, at: number): number {
  return at + 16 + file.readUInt32LE(at + 4);
}

async function withTimeout<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hung: ${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tlstap-record-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('record: round trip', () => {
  it('reads back 400 batches byte for byte, in order, with the header unchanged', async () => {
    const rand = prng(1);
    const batches = Array.from({ length: 400 }, () => randomBatch(rand, 40, 300));
    const path = join(dir, 'roundtrip.rec');
    const written = await writeRecording(path, batches);
    assert.equal((await stat(path)).size, written.size);

    const reader = await openRecordFile(path);
    assert.deepEqual(reader.header, { formatVersion: RECORD_FORMAT_VERSION, ...HEADER });
    assert.equal(reader.dataOffset, written.boundaries[0]);
    const { frames, stop } = await readAll(reader);
    assert.deepEqual(stop, { kind: 'end' });
    assert.equal(frames.length, batches.length);
    frames.forEach((f, i) => {
      assert.equal(f.count, batches[i]!.count, `count of batch ${i}`);
      assert.ok(f.batch.equals(batches[i]!.batch), `bytes of batch ${i}`);
      assert.equal(f.offset, written.boundaries[i]);
    });
    // A second pass starts over and sees the same frames.
    const again = await readAll(reader);
    assert.equal(again.frames.length, batches.length);
    await reader.close();
  });

  it('keeps order when batches are queued while earlier ones are still being written', async () => {
    const path = join(dir, 'order.rec');
    const writer = await RecordWriter.create(path, HEADER);
    const headerBytes = writer.bytesWritten;
    for (let i = 0; i < 3000; i++) {
      const rec = Buffer.alloc(8);
      rec.writeUInt32LE(i, 0);
      const { batch, count } = encodeBatch([rec, Buffer.from([i & 0xff])]);
      writer.writeBatch(batch, count);
      // writeBatch only queues: nothing reached the file synchronously.
      if (i === 0) assert.equal(writer.bytesWritten, headerBytes);
    }
    await new Promise((r) => setTimeout(r, 5));
    writer.writeBatch(...spread(encodeBatch([Buffer.from('last')])));
    await writer.close();
    assert.deepEqual(
      { ...writer.stats, bytesWritten: 0 },
      { bytesWritten: 0, batchesWritten: 3001, recordsWritten: 6001, batchesDropped: 0, recordsDropped: 0, bytesDropped: 0 },
    );
    const { frames, stop } = await readPath(path);
    assert.deepEqual(stop, { kind: 'end' });
    assert.equal(frames.length, 3001);
    for (let i = 0; i < 3000; i++) {
      const [[off]] = [...iterateBatchRecords(frames[i]!.batch, frames[i]!.count)] as [[number, number]];
      assert.equal(frames[i]!.batch.readUInt32LE(off), i);
    }
    assert.equal(frames[3000]!.batch.subarray(4).toString(), 'last');
  });

  it('a recording with no batches reads as the header and a clean end', async () => {
    const path = join(dir, 'empty.rec');
    const writer = await RecordWriter.create(path, HEADER);
    writer.writeBatch(Buffer.alloc(0), 0);
    await writer.close();
    const { frames, stop } = await readPath(path);
    assert.equal(frames.length, 0);
    assert.deepEqual(stop, { kind: 'end' });
  });
});

describe('record: writer safety', () => {
  it('creates the file with mode 0600 whatever the umask, also when replacing a 0644 file', async () => {
    const path = join(dir, 'mode.rec');
    const old = process.umask(0);
    try {
      await (await RecordWriter.create(path, HEADER)).close();
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      await writeFile(path, 'old');
      await chmod(path, 0o644);
      assert.equal((await stat(path)).mode & 0o777, 0o644);
      await (await RecordWriter.create(path, HEADER)).close();
      assert.equal((await stat(path)).mode & 0o777, 0o600);
    } finally {
      process.umask(old);
    }
  });

  it('refuses a symlink planted at the output path and leaves its target alone', async () => {
    const target = join(dir, 'victim.txt');
    await writeFile(target, 'precious', { mode: 0o644 });
    const path = join(dir, 'planted.rec');
    await symlink(target, path);
    await assert.rejects(RecordWriter.create(path, HEADER), (err: unknown) => {
      assert.ok(err instanceof RecordWriteError);
      assert.equal(err.code, 'ELOOP');
      assert.equal(err.path, path);
      assert.equal(err.bytesWritten, 0);
      assert.match(err.message, /symbolic link/);
      return true;
    });
    assert.equal(await readFile(target, 'utf8'), 'precious');
    assert.ok((await lstat(path)).isSymbolicLink());

    // A dangling symlink must not create its target either.
    const dangling = join(dir, 'dangling.rec');
    const nowhere = join(dir, 'should-not-exist');
    await symlink(nowhere, dangling);
    await assert.rejects(RecordWriter.create(dangling, HEADER), RecordWriteError);
    await assert.rejects(stat(nowhere), { code: 'ENOENT' });
  });

  it('does not write through a hard link planted at the output path', async () => {
    const target = join(dir, 'hardlink-victim.txt');
    await writeFile(target, 'precious');
    const path = join(dir, 'hardlink.rec');
    await link(target, path);
    const writer = await RecordWriter.create(path, HEADER);
    writer.writeBatch(...spread(encodeBatch([Buffer.from('secret')])));
    await writer.close();
    assert.equal(await readFile(target, 'utf8'), 'precious');
    assert.equal((await readPath(path)).frames.length, 1);
  });

  it('refuses a directory or a FIFO at the output path', async () => {
    const sub = join(dir, 'a-directory');
    await mkdir(sub);
    await assert.rejects(RecordWriter.create(sub, HEADER), (err: unknown) => err instanceof RecordWriteError && err.code === 'ENOTREG');
    const fifo = join(dir, 'a-fifo');
    const made = spawnSync('mkfifo', [fifo]);
    if (made.status === 0) {
      await assert.rejects(
        withTimeout(5000, 'create on a FIFO', RecordWriter.create(fifo, HEADER)),
        (err: unknown) => err instanceof RecordWriteError && err.code === 'ENOTREG',
      );
      await assert.rejects(
        withTimeout(5000, 'open a FIFO', openRecordFile(fifo)),
        (err: unknown) => err instanceof RecordFormatError && err.kind === 'not-a-recording',
      );
    }
  });

  it('rejects arguments that cannot be a batch, and writeBatch after close', async () => {
    const writer = await RecordWriter.create(join(dir, 'args.rec'), HEADER);
    assert.throws(() => writer.writeBatch(Buffer.alloc(3), 1), RangeError);
    assert.throws(() => writer.writeBatch(Buffer.alloc(8), 0), RangeError);
    assert.throws(() => writer.writeBatch(Buffer.alloc(8), -1), RangeError);
    assert.throws(() => writer.writeBatch(Buffer.alloc(8), 1.5), RangeError);
    assert.throws(() => writer.writeBatch(Buffer.alloc(MAX_FRAME_PAYLOAD + 1), 1), RangeError);
    assert.throws(() => writer.writeBatch('nope' as unknown as Buffer, 1), TypeError);
    await writer.close();
    assert.throws(() => writer.writeBatch(...spread(encodeBatch([Buffer.from('x')]))), /after close/);
    await assert.rejects(
      RecordWriter.create(join(dir, 'bad-header.rec'), { ...HEADER, monotonicToWallNs: 'soon' }),
      TypeError,
    );
  });

  it('drops and counts batches beyond maxQueuedBytes instead of growing without bound', async () => {
    const path = join(dir, 'queue.rec');
    const writer = await RecordWriter.create(path, HEADER, { maxQueuedBytes: 4 * (16 + 104) });
    const b = encodeBatch([Buffer.alloc(100, 7)]);
    for (let i = 0; i < 10; i++) writer.writeBatch(b.batch, b.count);
    await writer.close();
    const s = writer.stats;
    assert.equal(s.batchesWritten, 4);
    assert.equal(s.batchesDropped, 6);
    assert.equal(s.recordsDropped, 6);
    assert.equal(s.bytesDropped, 6 * 120);
    assert.equal((await readPath(path)).frames.length, 4);
  });

  it('surfaces a failure mid-way (EFBIG from a file size limit) once, with path and bytes written', async () => {
    const moduleUrl = new URL('../src/record/index.js', import.meta.url).href;
    const path = join(dir, 'efbig.rec');
    const script = `
      import { RecordWriter, encodeBatch } from ${JSON.stringify(moduleUrl)};
      const header = ${JSON.stringify(HEADER)};
      const errors = [];
      const w = await RecordWriter.create(${JSON.stringify(path)}, header, { onError: (e) => errors.push(e) });
      const b = encodeBatch([Buffer.alloc(10000, 1), Buffer.alloc(333, 2)]);
      for (let i = 0; i < 20; i++) w.writeBatch(b.batch, b.count);
      await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 5; i++) w.writeBatch(b.batch, b.count);
      let closeErr;
      try { await w.close(); } catch (e) { closeErr = e; }
      console.log(JSON.stringify({
        onErrorCalls: errors.length, same: errors[0] === closeErr, name: closeErr?.name, code: closeErr?.code,
        path: closeErr?.path, bytesWritten: closeErr?.bytesWritten, message: closeErr?.message, stats: w.stats,
      }));`;
    // 64 blocks of 1024 bytes; node ignores SIGXFSZ, so the write fails with EFBIG.
    const run = spawnSync('bash', ['-c', 'ulimit -f 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout) as Record<string, unknown> & { stats: Record<string, number> };
    assert.equal(out.onErrorCalls, 1);
    assert.equal(out.same, true);
    assert.equal(out.name, 'RecordWriteError');
    assert.equal(out.code, 'EFBIG');
    assert.equal(out.path, path);
    assert.equal(out.bytesWritten, 64 * 1024);
    assert.match(String(out.message), new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*65536 bytes`));
    assert.equal(out.stats.batchesWritten! + out.stats.batchesDropped!, 25);
    assert.ok(out.stats.batchesDropped! >= 5);
    assert.equal((await stat(path)).size, 64 * 1024);
    const { frames, stop } = await readPath(path);
    assert.equal(frames.length, out.stats.batchesWritten);
    assert.equal(stop.kind, 'truncated');
  });
});

describe('record: kill -9', () => {
  it('a writer killed mid-recording leaves a file that reads up to its last whole frame', async () => {
    const moduleUrl = new URL('../src/record/index.js', import.meta.url).href;
    const path = join(dir, 'killed.rec');
    const script = `
      import { RecordWriter, encodeBatch } from ${JSON.stringify(moduleUrl)};
      const w = await RecordWriter.create(${JSON.stringify(path)}, ${JSON.stringify(HEADER)});
      // 'ready' once the first 1000 frames are in the file (a frame is a 16-byte header and its batch).
      let i = 0, firstThousand = w.bytesWritten, said = false;
      const tick = () => {
        for (let k = 0; k < 50; k++, i++) {
          const rec = Buffer.alloc(2000 + (i % 777), i & 0xff);
          rec.writeUInt32LE(i, 0);
          const b = encodeBatch([rec, rec.subarray(0, 10)]);
          w.writeBatch(b.batch, b.count);
          if (i < 1000) firstThousand += 16 + b.batch.length;
        }
        if (!said && i >= 1000 && w.bytesWritten >= firstThousand) {
          said = true;
          process.stdout.write('ready\\n');
        }
        setImmediate(tick);
      };
      tick();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await withTimeout(10000, 'child writer start', new Promise<void>((resolve) => child.stdout.once('data', () => resolve())));
    await new Promise((r) => setTimeout(r, 30));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');

    const { frames, stop } = await readPath(path);
    assert.ok(frames.length >= 1000, `only ${frames.length} frames`);
    frames.forEach((f, i) => {
      const [[off, len]] = [...iterateBatchRecords(f.batch, f.count)] as [[number, number]];
      assert.equal(f.batch.readUInt32LE(off), i, 'frames are whole and in order');
      assert.equal(len, 2000 + (i % 777));
    });
    const size = (await stat(path)).size;
    const lastEnd = frames.length === 0 ? 0 : frames[frames.length - 1]!.offset + 16 + frames[frames.length - 1]!.batch.length;
    if (stop.kind === 'end') assert.equal(lastEnd, size);
    else {
      assert.equal(stop.kind, 'truncated');
      assert.equal(stop.offset, lastEnd);
    }
  });
});

describe('record: crash and damage', () => {
  let small: Written;
  before(async () => {
    const rand = prng(7);
    small = await writeRecording(
      join(dir, 'small.rec'),
      Array.from({ length: 6 }, () => randomBatch(rand, 4, 20)),
    );
  });

  it('a file cut at every byte length reads exactly the whole frames before the cut', async () => {
    const full = await readFile(small.path);
    const cut = join(dir, 'cut.rec');
    const dataOffset = small.boundaries[0]!;
    for (let len = 0; len <= full.length; len++) {
      await writeFile(cut, full.subarray(0, len));
      if (len < dataOffset) {
        await assert.rejects(openRecordFile(cut), (err: unknown) => {
          assert.ok(err instanceof RecordFormatError, `cut at ${len}`);
          assert.equal(err.path, cut);
          assert.equal(err.kind, len === 0 ? 'not-a-recording' : 'truncated', `cut at ${len}: ${err.message}`);
          return true;
        });
        continue;
      }
      const whole = small.boundaries.filter((b) => b <= len);
      const lastBoundary = whole[whole.length - 1]!;
      const { frames, stop } = await readPath(cut);
      assert.equal(frames.length, whole.length - 1, `frames for a cut at ${len}`);
      frames.forEach((f, i) => assert.ok(f.batch.equals(small.batches[i]!.batch)));
      if (lastBoundary === len) {
        assert.deepEqual(stop, { kind: 'end' }, `cut at ${len}`);
      } else {
        assert.equal(stop.kind, 'truncated', `cut at ${len}`);
        assert.equal(stop.kind === 'truncated' && stop.offset, lastBoundary, `offset for a cut at ${len}`);
      }
    }
  });

  it('a flipped payload byte skips that frame as damaged, counted, and reads every later frame', async () => {
    const full = await readFile(small.path);
    const path = join(dir, 'flipped.rec');
    for (let frame = 0; frame < small.batches.length; frame++) {
      const start = small.boundaries[frame]! + 16;
      const end = small.boundaries[frame + 1]!;
      for (let pos = start; pos < end; pos++) {
        const copy = Buffer.from(full);
        copy[pos]! ^= 1 << (pos % 8);
        await writeFile(path, copy);
        const { frames, stop, damaged } = await readPath(path);
        const expected = small.batches.filter((_, i) => i !== frame);
        assert.equal(frames.length, expected.length, `flip at ${pos}`);
        frames.forEach((f, i) => assert.ok(f.batch.equals(expected[i]!.batch), `flip at ${pos}: frame ${i}`));
        // The last frame has no intact frame after it: reading stops there, as damaged.
        const last = frame === small.batches.length - 1;
        const problem = last ? (stop.kind === 'corrupt' ? stop : undefined) : damaged[0];
        assert.equal(stop.kind, last ? 'corrupt' : 'end');
        assert.equal(damaged.length, last ? 0 : 1);
        assert.equal(problem?.offset, small.boundaries[frame]);
        if (!last) assert.equal(damaged[0]!.bytes, end - small.boundaries[frame]!);
        assert.match(problem?.detail ?? '', /CRC32/);
      }
    }
  });

  it('a damaged frame header (marker, record count, huge length) is skipped up to the next intact frame', async () => {
    const full = await readFile(small.path);
    const path = join(dir, 'frame-header.rec');
    const at = small.boundaries[2]!;
    const cases: [string, (b: Buffer) => void, RegExp][] = [
      ['marker', (b) => b.write('XFRM', at, 'latin1'), /frame marker/],
      ['count', (b) => b.writeUInt32LE(b.readUInt32LE(at + 8) + 1, at + 8), /CRC32|records/],
      ['huge length', (b) => b.writeUInt32LE(0xfffffff0, at + 4), /limit/],
      ['length past the end', (b) => b.writeUInt32LE(full.length, at + 4), /file ends/],
    ];
    for (const [name, damage, detail] of cases) {
      const copy = Buffer.from(full);
      damage(copy);
      await writeFile(path, copy);
      const { frames, stop, damaged } = await readPath(path);
      assert.equal(frames.length, small.batches.length - 1, name);
      assert.deepEqual(stop, { kind: 'end' }, name);
      assert.deepEqual(damaged.map((d) => [d.offset, d.bytes]), [[at, small.boundaries[3]! - at]], name);
      assert.match(damaged[0]!.detail, detail, name);
    }
    // The last frame damaged: nothing intact after it, so reading stops there as corrupt.
    const last = small.boundaries[small.batches.length - 1]!;
    const copy = Buffer.from(full);
    copy[last + 20]! ^= 0xff;
    await writeFile(path, copy);
    const tail = await readPath(path);
    assert.equal(tail.frames.length, small.batches.length - 1);
    assert.equal(tail.stop.kind, 'corrupt');
    assert.equal(tail.stop.kind === 'corrupt' && tail.stop.offset, last);
    // Zeros where a frame should be: the tail of a file whose last writes never reached the disk.
    const zeroed = Buffer.concat([full.subarray(0, at), Buffer.alloc(4096)]);
    await writeFile(path, zeroed);
    const { frames, stop, damaged } = await readPath(path);
    assert.equal(frames.length, 2);
    assert.equal(stop.kind, 'truncated');
    assert.equal(stop.kind === 'truncated' && stop.offset, at);
    assert.equal(damaged.length, 0);
  });

  it('says clearly when a file is not a recording', async () => {
    const path = join(dir, 'foreign');
    const cases: [Buffer, RegExp][] = [
      [Buffer.from('{"calls": []}\n'), /JSON/],
      [Buffer.from([0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a]), /pcapng/],
      [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]), /gzip/],
      [Buffer.from('hello world, this is some text'), /TLSTAPRC/],
      [Buffer.from('TLSTAPRX' + 'x'.repeat(40)), /TLSTAPRC/],
      [Buffer.alloc(0), /empty/],
    ];
    for (const [bytes, why] of cases) {
      await writeFile(path, bytes);
      await assert.rejects(openRecordFile(path), (err: unknown) => {
        assert.ok(err instanceof RecordFormatError);
        assert.equal(err.kind, 'not-a-recording');
        assert.equal(err.path, path);
        assert.match(err.message, /is not a tlstap recording/);
        assert.ok(err.message.includes(path));
        assert.match(err.message, why);
        return true;
      });
    }
  });

  it('refuses a newer format version and names the tlstap that wrote it', async () => {
    const full = await readFile(small.path);
    const path = join(dir, 'future.rec');
    const copy = Buffer.from(full);
    copy.writeUInt32LE(RECORD_FORMAT_VERSION + 1, 8);
    await writeFile(path, copy);
    await assert.rejects(openRecordFile(path), (err: unknown) => {
      assert.ok(err instanceof RecordFormatError);
      assert.equal(err.kind, 'newer-version');
      assert.match(err.message, new RegExp(`format version ${RECORD_FORMAT_VERSION + 1}`));
      assert.match(err.message, /tlstap 0\.1\.0-test/);
      assert.match(err.message, /upgrade tlstap/);
      return true;
    });
    // Even when the rest of a future file is unreadable, the version alone decides.
    const bare = Buffer.from(copy.subarray(0, 20));
    bare.writeUInt32LE(0x7fffffff, 12);
    await writeFile(path, bare);
    await assert.rejects(openRecordFile(path), (err: unknown) => err instanceof RecordFormatError && err.kind === 'newer-version');
  });

  it('rejects a damaged JSON header as corrupt', async () => {
    const full = await readFile(small.path);
    const path = join(dir, 'bad-json.rec');
    const copy = Buffer.from(full);
    copy[25]! ^= 0x20;
    await writeFile(path, copy);
    await assert.rejects(openRecordFile(path), (err: unknown) => {
      assert.ok(err instanceof RecordFormatError);
      assert.equal(err.kind, 'corrupt');
      assert.equal(err.offset, 20);
      assert.match(err.message, /CRC32/);
      return true;
    });
  });

  it('fuzz (seeded, 600 runs): flips, cuts, splices give intact frames, counted damage or a stop reason, never another error or a hang', async () => {
    const rand = prng(0x5eed);
    const base = await writeRecording(
      join(dir, 'fuzz-base.rec'),
      Array.from({ length: 12 }, () => randomBatch(rand, 6, 60)),
    );
    const full = await readFile(base.path);
    const known = new Set(base.batches.map((b) => b.batch.toString('hex')));
    const path = join(dir, 'fuzz.rec');
    const tally = { runs: 0, openErrors: 0, end: 0, truncated: 0, corrupt: 0, frames: 0, resynced: 0 };
    while (tally.runs < 600) {
      let bytes = Buffer.from(full);
      const mutations = randomInt(rand, 1, 4);
      for (let m = 0; m < mutations; m++) {
        // Aim most mutations at the frames, some at the file header.
        const pos = rand() < 0.85 ? randomInt(rand, base.boundaries[0]!, Math.max(base.boundaries[0]!, bytes.length - 1)) : randomInt(rand, 0, Math.min(bytes.length, 80));
        switch (randomInt(rand, 0, 6)) {
          case 0:
            if (pos < bytes.length) bytes[pos]! ^= 1 << randomInt(rand, 0, 7);
            break;
          case 1:
            if (pos < bytes.length) bytes[pos] = randomInt(rand, 0, 255);
            break;
          case 2:
            bytes = bytes.subarray(0, pos);
            break;
          case 3:
            if (pos + 4 <= bytes.length) bytes.writeUInt32LE([0, 0xffffffff, 0x7fffffff, MAX_FRAME_PAYLOAD, randomInt(rand, 0, 4096)][randomInt(rand, 0, 4)]!, pos);
            break;
          case 4:
            bytes = Buffer.concat([bytes.subarray(0, pos), bytes.subarray(Math.min(bytes.length, pos + randomInt(rand, 1, 40)))]);
            break;
          case 5: {
            const from = randomInt(rand, 0, bytes.length);
            bytes = Buffer.concat([bytes.subarray(0, pos), bytes.subarray(from, from + randomInt(rand, 1, 200)), bytes.subarray(pos)]);
            break;
          }
          default:
            bytes = Buffer.concat([bytes, Buffer.alloc(randomInt(rand, 1, 64), randomInt(rand, 0, 255))]);
        }
      }
      await writeFile(path, bytes);
      tally.runs++;
      const outcome = await withTimeout(
        2000,
        `fuzz run ${tally.runs}`,
        (async () => {
          let reader: RecordReader;
          try {
            reader = await openRecordFile(path);
          } catch (err) {
            assert.ok(err instanceof RecordFormatError, `open threw ${String(err)}`);
            assert.ok(['not-a-recording', 'newer-version', 'truncated', 'corrupt'].includes(err.kind));
            assert.ok(!err.message.includes('undefined') && !err.message.includes('\n'), err.message);
            return 'open-error' as const;
          }
          try {
            let offset = reader.dataOffset;
            const frames: number[] = [];
            for await (const f of reader.batches()) {
              // CRC32 makes a damaged frame that still reads as whole vanishingly unlikely.
              assert.ok(known.has(f.batch.toString('hex')), 'yielded a frame that was never written');
              assert.equal(validateBatch(f.batch, f.count), undefined);
              frames.push(f.offset);
              offset = f.offset + 16 + f.batch.length;
              tally.frames++;
            }
            // Every byte is a frame or a counted damaged stretch: frames and stretches tile the file.
            const pieces: { o: number; end?: number }[] = [...frames.map((o) => ({ o })), ...reader.damaged().map((d) => ({ o: d.offset, end: d.offset + d.bytes }))].sort((x, y) => x.o - y.o);
            for (const d of reader.damaged()) {
              assert.ok(d.bytes > 0 && d.detail.length > 0);
              assert.ok(frames.includes(d.offset + d.bytes), 'a damaged stretch ends where an intact frame starts');
            }
            if (reader.damaged().length > 0) tally.resynced++;
            let expect = reader.dataOffset;
            for (const p of pieces) {
              assert.equal(p.o, expect, 'frames and damaged stretches follow each other without a gap');
              expect = p.end ?? offsetAfter(bytes, p.o);
            }
            const stop = reader.stopReason();
            if (stop.kind === 'end') assert.equal(expect, bytes.length);
            else {
              assert.equal(stop.offset, expect);
              assert.ok(stop.detail.length > 0);
            }
            return stop.kind;
          } finally {
            await reader.close();
          }
        })(),
      );
      if (outcome === 'open-error') tally.openErrors++;
      else tally[outcome]++;
    }
    assert.ok(tally.frames > 0 && tally.truncated > 0 && tally.openErrors > 0 && tally.resynced > 50, JSON.stringify(tally));
  });
});

describe('record: records inside a batch', () => {
  it('yields the offset and length of each record', () => {
    const { batch, count } = encodeBatch([Buffer.from('abc'), Buffer.alloc(0), Buffer.from('hello')]);
    assert.deepEqual([...iterateBatchRecords(batch, count)], [
      [4, 3],
      [11, 0],
      [15, 5],
    ]);
    const seen: string[] = [];
    forEachBatchRecord(batch, count, (off, len, i) => seen.push(`${i}:${batch.toString('latin1', off, off + len)}`));
    assert.deepEqual(seen, ['0:abc', '1:', '2:hello']);
    assert.deepEqual([...iterateBatchRecords(Buffer.alloc(0), 0)], []);
  });

  it('throws a BatchFormatError naming the record when the framing is inconsistent', () => {
    const { batch } = encodeBatch([Buffer.from('abc'), Buffer.from('hello')]);
    const cases: [Buffer, number, number, RegExp][] = [
      [batch, 3, 2, /record 2 of 3/],
      [batch, 1, 1, /left over/],
      [batch.subarray(0, batch.length - 1), 2, 1, /record 1 of 2.*run past/],
      [Buffer.from([0xff, 0xff, 0xff, 0xff]), 1, 0, /record 0 of 1/],
      [Buffer.from([1, 0]), 1, 0, /length prefix/],
    ];
    for (const [b, count, index, why] of cases) {
      assert.throws(
        () => [...iterateBatchRecords(b, count)],
        (err: unknown) => err instanceof BatchFormatError && err.recordIndex === index && why.test(err.message),
      );
      assert.throws(() => forEachBatchRecord(b, count, () => undefined), BatchFormatError);
      assert.notEqual(validateBatch(b, count), undefined);
    }
  });
});
