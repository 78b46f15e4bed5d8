// A plan: the capture a front end sets up, written down for an agent that records alone on the device
// (`tlstap-agent --plan PLAN --record FILE`; docs/agent.md, "Recording on the device alone").
import { RECORD_FORMAT_VERSION } from '../record/format.js';
import type { RecordHeader } from '../record/format.js';
import { Args, PLAN_CREATED_AT, PLAN_MAGIC, PLAN_MONOTONIC_TO_WALL, PLAN_VERSION, encodeFrame, encodeRequest } from './protocol.js';
import type { ViewStat } from './view.js';

/** A probed file as discovery saw it: the agent refuses the plan if it changed since. */
export interface PlannedFile {
  path: string;
  stat: Pick<ViewStat, 'size' | 'mtimeNs' | 'ino'>;
}

/** One request of the plan, as it would go to a live agent. */
export interface PlannedRequest {
  op: number;
  args?: Uint8Array;
}

/** What a plan holds: the recording's header (the agent fills the time fields), the files, the requests. */
export interface Plan {
  header: Omit<RecordHeader, 'formatVersion' | 'createdAt' | 'monotonicToWallNs'>;
  files: readonly PlannedFile[];
  requests: readonly PlannedRequest[];
}

/** The bytes of a plan file. */
export function encodePlan(plan: Plan): Buffer {
  const prefix = Buffer.alloc(16);
  prefix.write(PLAN_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(PLAN_VERSION, 8);
  const header = {
    formatVersion: RECORD_FORMAT_VERSION,
    ...plan.header,
    createdAt: PLAN_CREATED_AT,
    monotonicToWallNs: PLAN_MONOTONIC_TO_WALL,
  };
  const frames = [prefix, encodeFrame('planHeader', 0, Buffer.from(JSON.stringify(header), 'utf8'))];
  for (const f of plan.files) {
    const check = new Args().u64(f.stat.size).u64(BigInt.asUintN(64, f.stat.mtimeNs)).u64(f.stat.ino).bytes(f.path).done();
    frames.push(encodeFrame('planCheck', 0, check));
  }
  plan.requests.forEach((r, i) => frames.push(encodeFrame('request', i + 1, encodeRequest(r.op, r.args))));
  return Buffer.concat(frames);
}
