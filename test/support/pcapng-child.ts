// A child process for the pcapng tests: `stdout N` writes N calls with `-w -` and reports on stderr;
// `file PATH` writes calls to PATH until it is killed.
import { createPcapngSink } from '../../src/pcapng/sink.js';
import { FIXED_HEADER, makeCall, testContext } from './pcapng-tools.js';

const [mode, arg] = process.argv.slice(2);
const body = Buffer.alloc(20_000, 'x');

async function main(): Promise<void> {
  if (mode === 'stdout') {
    const sink = await createPcapngSink('-', testContext, {
      header: FIXED_HEADER,
      onClosed: (_error, message) => process.stderr.write(`${message}\n`),
    });
    const n = Number(arg);
    for (let i = 0; i < n && sink.error === undefined; i++) {
      sink.write(makeCall({ dir: i % 2 === 0 ? 'write' : 'read', data: body, tsNs: BigInt(i) * 1000n }));
      if (sink.needsDrain) await sink.drained();
    }
    await sink.close();
    process.stderr.write(`done bytes=${sink.bytesWritten} packets=${sink.packetsWritten} error=${sink.error?.code ?? 'none'}\n`);
    return;
  }
  if (mode === 'file') {
    const sink = await createPcapngSink(arg!, testContext, { header: FIXED_HEADER, flushDelayMs: 1 });
    process.stdout.write('ready\n');
    for (let i = 0; ; i++) {
      sink.write(makeCall({ dir: i % 2 === 0 ? 'write' : 'read', data: body, tsNs: BigInt(i) * 1000n }));
      if (sink.needsDrain) await sink.drained();
      if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
