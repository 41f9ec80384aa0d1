import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  EventLog,
  replayableFrom,
  replayVersion,
  verifyLog,
  type RetentionStatus,
} from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { ack, nodeYaml, plannerEnv, sendAck, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const status = async (p: RunningPlanner) =>
  (await (await fetch(`${p.url}/status`)).json()) as {
    latestVersion: number;
    retention: RetentionStatus & { lastCompaction: { by: string; eventsRemoved: number } | null };
    storage: { growth: { versions: number; bytesPerHour: number } };
  };

/** A new version: service `a` gets another endpoint. */
async function nextVersion(p: RunningPlanner, n: number): Promise<number> {
  const before = p.planner.data.latest()?.version ?? 0;
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', [`10.0.${n >> 8}.${n & 255}`])}`);
  await until(() => (p.planner.data.latest()?.version ?? 0) > before, 10_000, `a version after ${before}`);
  return p.planner.data.latest()!.version;
}

describe('planner --retain-versions (online retention, review4 G8)', () => {
  it('compacts its log while it runs, never past the version a fleet node runs; every retained version replays', {
    timeout: 120_000,
  }, async () => {
    const p = await runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: env.db,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 50,
      leaseTtlMs: 3000,
      checkpointEvery: 2,
      retain: { versions: 3 },
      retainEveryMs: 100,
    });
    stops.push(() => p.stop());
    await p.planner.synced;
    for (let n = 1; n <= 2; n++) await nextVersion(p, n);
    // node-1 (a Node of the cluster, so in the fleet) runs version 3: retention stops there (it
    // keeps 3 versions: before a fourth, nothing is removed)
    const rev = p.planner.config.state.defaultRevision;
    await sendAck(env.nc, ack('node-1', 3, rev, 'x'.repeat(64)));
    await until(() => p.planner.retentionFloors().some((f) => f.version === 3), 10_000, 'node-1 ACK logged');
    expect((await status(p)).retention).toMatchObject({ oldestVersion: 1, lastCompaction: null });
    let latest = 0;
    for (let n = 3; n <= 10; n++) latest = await nextVersion(p, n);
    const held = await until(
      async () => {
        const s = (await status(p)).retention;
        return s.lastCompaction && s.heldBy === 'node node-1 (it runs version 3)' ? s : undefined;
      },
      20_000,
      'a compaction held by node-1',
    );
    expect(held.oldestVersion).toBeGreaterThan(1);
    expect(held.oldestVersion).toBeLessThanOrEqual(3);
    expect(held.policy).toEqual({ versions: 3 });
    expect(held.lastCompaction!.by).toBe('planner');

    // node-1 moves on to the latest: only the policy holds now
    await sendAck(env.nc, ack('node-1', latest, rev, 'x'.repeat(64)));
    const s = await until(
      async () => {
        const st = await status(p);
        // the group's log may still hold it back a little: the mark it acknowledged is saved once a second
        return st.retention.oldestVersion! > 3 && !st.retention.heldBy?.startsWith('node') ? st : undefined;
      },
      20_000,
      'retention past version 3',
    );
    expect(s.retention.oldestVersion).toBeLessThanOrEqual(latest - 2);
    expect(s.retention.heldBy ?? "the group's log").toMatch(/^the group's log/);
    expect(s.retention.oldestSeq).toBeGreaterThan(1);
    // made in the last hour, as of its last reading (kept 30 s)
    expect(s.storage.growth.versions).toBeGreaterThan(0);
    expect(s.storage.growth.versions).toBeLessThanOrEqual(latest);
    expect(s.storage.growth.bytesPerHour).toBeGreaterThan(0);
    const metrics = await (await fetch(`${p.url}/metrics`)).text();
    const removed = /switchboard_planner_log_rows_compacted_total\{table="events"\} (\d+)/.exec(metrics);
    expect(Number(removed?.[1])).toBe(s.retention.oldestSeq - 1);
    // the versions the planner made, as it recorded them, while it ran
    const hashes = new Map(p.planner.versions({ from: 1 }).map((v) => [v.version, v.hash]));
    await p.stop();
    stops.length = 0;

    const log = await EventLog.open({ file: env.db, readOnly: true });
    try {
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      const from = replayableFrom(log)!;
      // runs went on after that status (every 100 ms, as the group's mark moved): never back
      expect(from).toBeGreaterThanOrEqual(s.retention.oldestVersion!);
      expect(from).toBeLessThanOrEqual(latest - 2);
      for (let v = from; v <= latest; v++) expect(replayVersion(log, v).hash).toBe(hashes.get(v));
      expect(() => replayVersion(log, from - 1)).toThrow(/compacted/);
    } finally {
      log.close();
    }
  });
});
