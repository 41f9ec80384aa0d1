import type { EventLog, RetentionFloor } from '../../libs/eventlog/index.ts';
import { nodesBehind, replayableFrom } from '../../libs/eventlog/index.ts';
import type { DataAxis } from '../../libs/versioning/index.ts';
import type { PlannerBus } from './planner-bus.ts';

export interface RetentionInputs {
  readonly data: DataAxis;
  /** The fleet now (Planner.fleet). */
  readonly fleet: () => string[];
  readonly log: EventLog;
  readonly bus: PlannerBus;
  readonly role: 'leader' | 'follower';
}

/**
 * What online retention must keep replayable, as this planner knows it (libs/eventlog
 * online-retention.ts): the pinned version, the version each fleet node last ACKed (it runs that
 * one; a node silent since holds it, said as the floor on /status), and, leading, every version
 * not yet on the versions stream (published in their checkpoint form, they are rebuilt). Config
 * revisions (a rollout's previous one included) are never compacted.
 */
export function retentionFloors(o: RetentionInputs): RetentionFloor[] {
  const floors: RetentionFloor[] = [];
  const pin = o.data.pin;
  if (pin) floors.push({ version: pin.version, why: `the data ${pin.kind} to version ${pin.version}` });
  const fleet = new Set(o.fleet());
  for (const n of nodesBehind(o.log, { all: true }))
    if (fleet.has(n.node) && n.ackedVersion > 0)
      floors.push({ version: n.ackedVersion, why: `node ${n.node} (it runs version ${n.ackedVersion})` });
  const latest = o.data.latest()?.version ?? 0;
  const published = o.bus.lastPublishedVersion();
  if (o.role === 'leader' && published < latest)
    floors.push({
      version: published + 1,
      why: `version ${published + 1} (not on the versions stream yet)`,
    });
  return floors;
}

/** A range of versions cut to what the log rebuilds (rows kept below it, a parent, are not listed). */
export function rebuildable<R extends { from?: number }>(log: EventLog, range: R): R {
  const oldest = replayableFrom(log) ?? Number.MAX_SAFE_INTEGER;
  return { ...range, from: Math.max(range.from ?? 0, oldest) };
}
