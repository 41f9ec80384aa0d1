import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog, nodeAt } from '../../../libs/eventlog/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  ack,
  nack,
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sendAck,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

// An applier sends its last ACK/NACK again after every reconnect (probe14 P1: one written into a
// half-open connection is lost). The planner's ReportLogGate drops a repeat of a node's last
// logged word only in memory and only for 60 s: a reconnect later than that (a NATS restart hours
// after the node's last report), or a planner that restarted or took over meanwhile, wrote the
// same report as a second row, received hours later: `audit node` then said the node ACKed (or
// failed) the version at that later time, with a clock skew of hours.

let env: PlannerEnv;
let planner: RunningPlanner | undefined;

const start = () =>
  runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  planner = await start();
  await planner.planner.synced;
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

function rows(): { type: string; version: number; at: string; receivedAt: string }[] {
  const db = new Database(env.db, { readonly: true });
  try {
    return db
      .prepare(`SELECT type, version, at, received_at AS receivedAt FROM acks WHERE node = 'node-1' ORDER BY id`)
      .all() as { type: string; version: number; at: string; receivedAt: string }[];
  } finally {
    db.close();
  }
}

/** Waits until every report sent before this one has been through the planner's log writer. */
async function settled(n: number): Promise<void> {
  const marker = { ...nack('node-2', 1, 1, `marker ${n}`), lastGoodVersion: 0, lastGoodConfigRevision: 0 };
  await sendAck(env.nc, marker);
  const db = new Database(env.db, { readonly: true });
  try {
    const has = db.prepare(`SELECT 1 FROM acks WHERE node = 'node-2' AND json_extract(body, '$.error') = ?`);
    await until(() => has.get(`marker ${n}`), 5000, `marker ${n} in the log`);
  } finally {
    db.close();
  }
}

describe('a report the applier sends again after a reconnect', () => {
  it('is one row, received when first heard, also after a planner restart; a new report of the same version is a row of its own', async () => {
    const p = planner!.planner;
    const hash = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    const first = ack('node-1', 1, 1, hash, p.data.latest()!.hash);
    await sendAck(env.nc, first);
    await settled(1);
    expect(rows().map((r) => `${r.type} ${r.version}`)).toEqual(['ACK 1']);
    const firstReceived = rows()[0]!.receivedAt;

    // the planner restarts (or another member takes over: its gate is as new); the applier's
    // connection comes back later and it sends its last report again, as it was
    await planner!.stop();
    planner = await start();
    await planner.planner.synced;
    await new Promise((r) => setTimeout(r, 20)); // the next receipt is at a later millisecond
    await sendAck(env.nc, first);
    await settled(2);
    expect(rows().map((r) => `${r.type} ${r.version}`)).toEqual(['ACK 1']);
    const log = await EventLog.open({ file: env.db, readOnly: true });
    try {
      expect(nodeAt(log, 'node-1').receivedAt).toBe(firstReceived);
    } finally {
      log.close();
    }

    // a NACK of the same version, then a genuinely new ACK of it (the node's own new time): both
    // rows; the NACK re-sent after the ACK (a stale copy) is not a row again
    const failed = nack('node-1', 1, 1, 'ipset: out of memory');
    await sendAck(env.nc, failed);
    await new Promise((r) => setTimeout(r, 5));
    const again = { ...first, at: new Date().toISOString() };
    await sendAck(env.nc, again);
    await sendAck(env.nc, again);
    await sendAck(env.nc, failed);
    await settled(3);
    expect(rows().map((r) => `${r.type} ${r.version}`)).toEqual(['ACK 1', 'NACK 1', 'ACK 1']);
    expect(rows()[2]!.at).toBe(again.at);
  });
});
