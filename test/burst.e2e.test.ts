// End-to-end, as root: an unpaced download captured into every output at once (issue 16's
// reproduction) while two CPU-bound neighbours share the CPUs.
// The native poller moves records into the spill as fast as they come; the outputs catch up late
// but complete: nothing dropped, the body rebuilt from the pcapng equals the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { burstRound, setUpBurst } from '../bench/burst.js';
import { requireRoot } from './support/privileges.js';

const MIB = Number(process.env.TLSTAP_E2E_BURST_MIB ?? 128);

test(`a ${MIB} MiB unpaced download beside two CPU burners, captured with -w, -f jsonl -o and --har: 0 dropped, the pcapng body equals the file, the spill held the backlog`, async (t) => {
  if (!requireRoot(t)) return;
  const setup = await setUpBurst(MIB);
  try {
    const round = await burstRound(setup, 'all', 2);
    const run = round.tlstap!;
    assert.equal(run.code, 0, run.stderr);
    assert.ok(round.curlBodyOk, `curl got the whole file (exit ${round.curlCode})`);
    assert.equal(run.summary?.eventsDropped, 0, `nothing dropped:\n${run.stderr}`);
    assert.equal(run.summary?.bytesDropped, 0, run.stderr);
    assert.ok(round.pcapngBodyOk, 'the response body rebuilt from the pcapng equals the file (sha256)');
    // The summary reports the spill; with the CPUs taken, the outputs fall behind the download.
    assert.ok(round.spillPeakBytes !== undefined, `the summary shows the spill:\n${run.stderr}`);
    assert.ok(round.spillPeakBytes > 0, `the spill held a backlog:\n${run.stderr}`);
    console.log(
      `# ${MIB} MiB in ${Math.round(round.downloadMs)} ms; spill peak ${(round.spillPeakBytes / 2 ** 20).toFixed(1)} MiB, ` +
        `output up to ${Math.round(round.spillMaxDelayMs ?? 0)} ms late; tlstap peak RSS ${(run.peakRss / 2 ** 20).toFixed(1)} MiB`,
    );
  } finally {
    await setup.close();
  }
});
