import Database from 'better-sqlite3';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { replayAt } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// Review 2, L3: `replay --at TIME` picked max(version) WHERE created_at <= TIME while created_at is
// each writing planner's wall clock: after a failover to a planner whose clock is behind (or an NTP
// step back) a version made after TIME carried a stamp before it and was named "current at TIME".

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const svc = (name: string): WatchEvent => ({
  kind: 'Service',
  type: 'ADDED',
  origin: 'watch',
  namespace: 'default',
  name,
  uid: `u-${name}`,
  resourceVersion: '1',
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: '1' },
    spec: { clusterIP: '10.96.0.10', ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

/** A clock set by the test. */
function manualClock(iso: string): { now: () => Date; set: (iso: string) => void } {
  let t = Date.parse(iso);
  return { now: () => new Date(t), set: (s) => (t = Date.parse(s)) };
}

async function replayAtCli(file: string, at: string): Promise<{ code: number; version: number }> {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    const code = await main(['replay', '--db', file, '--at', at, '--json']);
    return { code, version: (JSON.parse(out) as { version: number }).version };
  } finally {
    o.mockRestore();
  }
}

describe('replay --at on clocks that step back', () => {
  it('versions are stamped monotonic along the chain within 60 s: max(now, the parent version created_at); beyond, replay --at places them', async () => {
    const file = tmp.file('stepped-back.db');
    const clock = manualClock('2026-01-01T10:00:00Z');
    const log = await openLog(file, clock.now);
    const axis = DataAxis.restore(log);
    axis.ingest([svc('a')]);
    axis.sync(); // v1 at 10:00
    clock.set('2026-01-01T10:05:00Z');
    axis.ingest([svc('b')]);
    axis.sync(); // v2 at 10:05
    clock.set('2026-01-01T10:04:30Z'); // a failover to a planner 30 s behind
    axis.ingest([svc('c')]);
    axis.sync(); // v3: made after v2, so not stamped before it
    clock.set('2026-01-01T10:01:00Z'); // and to one 4 minutes behind: a clock fault (review4 G6)
    axis.ingest([svc('d')]);
    axis.sync(); // v4 keeps its writer's stamp, not clamped by more than 60 s
    expect(log.versions().map((v) => v.createdAt)).toEqual([
      '2026-01-01T10:00:00.000Z',
      '2026-01-01T10:05:00.000Z',
      '2026-01-01T10:05:00.000Z',
      '2026-01-01T10:01:00.000Z',
    ]);
    // placed after the versions before it all the same (stamp-order.ts)
    expect(replayAt(log, '2026-01-01T10:02:00Z').version.version).toBe(1);
    expect(replayAt(log, '2026-01-01T10:05:00Z').version.version).toBe(4);
    log.close();
    expect(await replayAtCli(file, '2026-01-01T10:02:00Z')).toEqual({ code: 0, version: 1 });
  });

  // probe12 L2: a planner an hour ahead made versions, then one with the right clock: `replay --at`
  // inside that step named a version as if certain; it now says (stderr, JSON clockStep) it may be off.
  it('replay --at inside a clock step says it is uncertain, and by how much', async () => {
    const file = tmp.file('uncertain.db');
    const clock = manualClock('2026-01-01T10:00:00Z');
    const log = await openLog(file, clock.now);
    const axis = DataAxis.restore(log);
    axis.ingest([svc('a')]);
    axis.sync(); // v1 at 10:00
    clock.set('2026-01-01T11:01:00Z'); // a planner an hour ahead
    axis.ingest([svc('b')]);
    axis.sync();
    clock.set('2026-01-01T10:02:00Z'); // the right clock again
    axis.ingest([svc('c')]);
    axis.sync();
    expect(log.versionAtUncertain('2026-01-01T10:01:30.000Z')).toMatch(
      /the versions' stamps step back by up to 3540 s between 2026-01-01T10:00:00.000Z and 2026-01-01T11:01:00.000Z/,
    );
    expect(log.versionAtUncertain('2026-01-01T09:59:00.000Z')).toBeUndefined();
    log.close();
    let err = '';
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((t) => {
      err += String(t);
      return true;
    });
    const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await main(['replay', '--db', file, '--at', '2026-01-01T10:01:30Z'])).toBe(0);
    } finally {
      e.mockRestore();
      o.mockRestore();
    }
    expect(err).toMatch(/^switchboard: replay: UNCERTAIN: the versions' stamps step back by up to 3540 s/m);
  });

  it('a log written before the fix, with stamps that go back: the version before the first one stamped after TIME', async () => {
    const file = tmp.file('legacy.db');
    const clock = manualClock('2026-01-01T10:00:00Z');
    const log = await openLog(file, clock.now);
    const axis = DataAxis.restore(log);
    for (const [i, at] of ['10:00', '10:05', '10:10'].entries()) {
      clock.set(`2026-01-01T${at}:00Z`);
      axis.ingest([svc(`s${i}`)]);
      axis.sync();
    }
    log.close();
    // as an older release stamped it: v3 made after v2 on a clock 9 minutes behind
    const db = new Database(file);
    db.prepare(`UPDATE versions SET created_at = '2026-01-01T10:01:00.000Z' WHERE version = 3`).run();
    db.close();
    expect(await replayAtCli(file, '2026-01-01T10:02:00Z')).toEqual({ code: 0, version: 1 });
    expect(await replayAtCli(file, '2026-01-01T10:06:00Z')).toEqual({ code: 0, version: 3 });
  });
});
