import type { NatsConnection } from '@nats-io/transport-node';
import { expect } from 'vitest';
import {
  createLogReplicator,
  EventLog,
  replayVersion,
  samePosition,
  verifyLog,
  type LogReplicator,
} from '../../../../libs/eventlog/index.ts';
import { DataAxis } from '../../../../libs/versioning/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../../libs/model/index.ts';
import { driveDataAxis, randomHistory } from './random-history.ts';

/**
 * Writes a random history into `log` through the planner's real data axis, in steps, with an ACK
 * and now and then a config revision per step: every table the planner restores from gets rows.
 * `after` runs after each step's writes (the leader's flush). `checkpointEvery`: the planner's
 * periodic checkpoints (default every 7 events; 0: none).
 */
export async function writeHistory(
  log: EventLog,
  o: { seed: number; steps: number; after: () => Promise<void>; axis?: DataAxis; checkpointEvery?: number },
): Promise<void> {
  const axis = o.axis ?? DataAxis.restore(log);
  let i = 0;
  for (const step of randomHistory({ seed: o.seed, steps: o.steps })) {
    driveDataAxis(log, [step], { checkpointEvery: o.checkpointEvery ?? 7, axis });
    const v = log.latestVersion();
    if (v)
      log.recordAck({
        type: 'ACK',
        node: `node-${i % 3}`,
        version: v.version,
        configRevision: 0,
        at: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
      } as never);
    if (i % 5 === 0)
      log.recordConfigRevision({ config: { ...DEFAULT_PROXY_CONFIG, tcpTimeout: i }, reason: `step ${i}` });
    log.resumeStore().save('Service', String(1000 + i));
    log.resumeStore().flush();
    i++;
    await o.after();
  }
}

/** What a replica must agree on: chain heads, every version's replayed hash, resume points, the objects the log holds. */
export function replicaDigest(log: EventLog): {
  position: unknown;
  verified: boolean;
  replays: string[];
  operations: number;
  resume: string | undefined;
  liveObjects: number[];
} {
  return {
    position: log.position(),
    verified: verifyLog(log, { deep: true }).ok,
    replays: log.versions().map((v) => `${v.version}:${replayVersion(log, v.version).hash}`),
    operations: log.operations().length,
    resume: log.resumeStore().load('Service'),
    // What a source diffs its first scan or LIST against after a takeover.
    liveObjects: log.liveObjectEvents().map((e) => e.seq),
  };
}

/** A replica of `group`'s log: a real SQLite file and a replicator on `nc`; its log lines go to `lines`. */
export async function logReplica(
  nc: NatsConnection,
  group: string,
  o: { file: string; lines: string[]; acceptTruncation?: boolean },
): Promise<{ log: EventLog; r: LogReplicator }> {
  const log = await EventLog.open({ file: o.file, sync: 'normal' });
  const r = await createLogReplicator({
    log,
    nc,
    group,
    replicas: 1,
    id: `r${o.lines.length}`,
    logger: (l) => o.lines.push(l),
    appendTimeoutMs: 2000,
    ...(o.acceptTruncation ? { acceptTruncation: true } : {}),
  });
  return { log, r };
}

/** Waits until the follower's file stands where the leader's does (polled: no event to await). */
export async function caughtUpWith(b: { log: EventLog }, a: { log: EventLog }, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!samePosition(b.log.position(), a.log.position()) && Date.now() < end)
    await new Promise((r) => setTimeout(r, 50));
  expect(b.log.position(), what).toEqual(a.log.position());
}
