// A plan: the capture a front end sets up, written down for an agent that records alone on the device
// (`tlstap-agent --plan PLAN --record FILE`; docs/agent.md, "Recording on the device alone").
import { RECORD_FORMAT_VERSION } from '../record/format.js';
import type { RecordHeader } from '../record/format.js';
import { Args, OP, PLAN_CREATED_AT, PLAN_MAGIC, PLAN_MONOTONIC_TO_WALL, PLAN_VERSION, encodeFrame, encodeRequest } from './protocol.js';
import type { AgentRequests } from './session.js';
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

/** The ops whose answer is a u32 link index (agent/protocol.h). */
const LINK_OPS: ReadonlySet<number> = new Set([OP.ATTACH_UPROBE, OP.ATTACH_MULTI, OP.ATTACH_TP]);

/**
 * Takes a capture's requests as a live agent would (RemoteBpfSession over it) and keeps them for a
 * plan: every request succeeds, attach requests with the link index the agent will give in turn.
 * Only requests that set up a capture may be written down: anything after START is refused.
 */
export class PlanWriter implements AgentRequests {
  readonly requests: PlannedRequest[] = [];
  readonly gone: Promise<Error> = new Promise(() => undefined);
  onRecords: (batch: Buffer, count: number) => void = () => undefined;
  private links = 0;
  private started = false;

  async request(op: number, args?: Uint8Array): Promise<Buffer> {
    if (this.started) throw new Error(`a plan ends with its START request; request ${op} came after it`);
    this.requests.push(args === undefined ? { op } : { op, args: Uint8Array.from(args) });
    if (op === OP.START) this.started = true;
    if (!LINK_OPS.has(op)) return Buffer.alloc(0);
    const link = Buffer.alloc(4);
    link.writeUInt32LE(this.links++);
    return link;
  }
}
