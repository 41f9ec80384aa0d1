import { describe, expect, it } from 'vitest';
import {
  applyClock,
  applyClockOnSessionStart,
  applyClockOnTarget,
  newestHealth,
  nodeStatus,
  summarizeStatus,
  unknownFieldsWarnings,
  type NodeObservation,
} from '../../../libs/control/index.ts';
import type { Ack, Heartbeat, Nack } from '../../../libs/model/index.ts';

const ack = (version: number, configRevision: number, nodeStateHash = 'H', mode = 'ipvs'): Ack => ({
  type: 'ACK',
  node: 'n1',
  version,
  configRevision,
  dataHash: 'd',
  nodeStateHash,
  mode,
  kernelWrites: 0,
  timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
  at: '2025-01-01T00:00:00Z',
});
const nack = (version: number, configRevision: number, error: string, lastGood: [number, number]): Nack => ({
  type: 'NACK',
  node: 'n1',
  version,
  configRevision,
  error,
  lastGoodVersion: lastGood[0],
  lastGoodConfigRevision: lastGood[1],
  at: '2025-01-01T00:00:01Z',
});
const hb = (v: number, c: number, o: { healthy?: boolean; detail?: string; mode?: string } = {}): Heartbeat =>
  ({
    node: 'n1',
    appliedVersion: v,
    appliedConfigRevision: c,
    mode: o.mode ?? 'ipvs',
    healthy: o.healthy ?? true,
    detail: o.detail ?? '',
    at: '2025-01-01T00:00:02Z',
  }) as Heartbeat;
const at = (o: Omit<NodeObservation, 'node'>): NodeObservation => ({ node: 'n1', targetSetAt: 1000, ...o });
const NOW = 2000;

describe('nodeStatus: one function for the word, what runs, and why', () => {
  const target = { version: 5, configRevision: 2 };
  it('version 0 config 0 is no version: a restarted applier that verified none yet says what it last ACKed before, not "running version 0"', () => {
    // the previous process ACKed 5/2; the new one heartbeats before its first apply verified
    const restarted = { ...hb(0, 0), lastAckedBeforeStart: { version: 4, configRevision: 2 } };
    expect(
      nodeStatus(at({ target, last: ack(4, 2), lastAt: 1200, heartbeat: restarted, heartbeatAt: 1500 }), NOW),
    ).toMatchObject({
      status: 'APPLYING',
      appliedVersion: null,
      appliedConfigRevision: null,
      mode: 'ipvs',
      lag: 1,
      reason: 'restarted (last ACKed version 4 config 2 before, not yet verified), target 5 config 2',
    });
    // no state file (or an applier older than the field): nothing to say but that
    expect(nodeStatus(at({ target, heartbeat: hb(0, 0), heartbeatAt: 1500 }), NOW)).toMatchObject({
      status: 'APPLYING',
      appliedVersion: null,
      lag: 5,
      reason: 'no version verified since its applier started, target 5 config 2',
    });
    // its first apply failed: the NACK's last good 0/0 is no version either
    expect(
      nodeStatus(
        at({ target, last: nack(5, 2, 'boom', [0, 0]), lastAt: 1600, heartbeat: restarted, heartbeatAt: 1500 }),
        NOW,
      ),
    ).toMatchObject({ status: 'ERROR', appliedVersion: null, reason: 'NACK for version 5 config 2: boom' });
  });

  it('reports a hash match only for an ACK of the target', () => {
    expect(
      nodeStatus(at({ target, last: ack(5, 2, 'H'), lastAt: 1500, expectedNodeStateHash: 'H' }), NOW),
    ).toMatchObject({
      status: 'SYNCED',
      hashMatch: true,
      lag: 0,
      appliedVersion: 5,
      appliedConfigRevision: 2,
      mode: 'ipvs',
      lastError: null,
    });
    expect(
      nodeStatus(at({ target, last: ack(5, 2, 'X'), lastAt: 1500, expectedNodeStateHash: 'H' }), NOW).hashMatch,
    ).toBe(false);
    expect(
      nodeStatus(at({ target, last: ack(3, 2, 'H'), lastAt: 1500, expectedNodeStateHash: 'H' }), NOW),
    ).toMatchObject({ status: 'APPLYING', hashMatch: null, lag: 2 });
  });

  it('an ACK of the target whose node-state hash differs from the planner rendering is ERROR, not SYNCED', () => {
    const expectedNodeStateHash = 'e'.repeat(64);
    const r = nodeStatus(
      at({
        target,
        last: ack(5, 2, 'a'.repeat(64)),
        lastAt: 1500,
        expectedNodeStateHash,
        heartbeat: { ...hb(5, 2), dataHash: 'd', nodeStateHash: 'a'.repeat(64) },
        heartbeatAt: 1800,
      }),
      NOW,
    );
    expect(r).toMatchObject({
      status: 'ERROR',
      hashMatch: false,
      appliedVersion: 5,
      lag: 0,
      reason: 'runs version 5 config 2 with node-state hash aaaaaaaaaaaa, the planner renders eeeeeeeeeeee',
    });
    expect(r.lastError).toBe(r.reason);
    // An applier of a release before heartbeat hashes (e.g. 0f3dc3b, probe15 U2) renders by its own
    // rules: after a planner upgrade its ERROR says so instead of reading as drift.
    const older = nodeStatus(
      at({
        target,
        last: ack(5, 2, 'a'.repeat(64)),
        lastAt: 1500,
        expectedNodeStateHash,
        heartbeat: hb(5, 2),
        heartbeatAt: 1800,
      }),
      NOW,
    );
    expect(older).toMatchObject({
      status: 'ERROR',
      reason:
        'runs version 5 config 2 with node-state hash aaaaaaaaaaaa, the planner renders eeeeeeeeeeee (its heartbeats carry no dataHash: an applier of an older release, which renders by its own rules; upgrade it)',
    });
    expect(older.lastError).toBe(older.reason);
    // a data hash mismatch is not about rendering rules: no note
    expect(
      nodeStatus(
        at({
          target,
          last: { ...ack(5, 2), dataHash: 'x' },
          lastAt: 1500,
          expectedDataHash: 'd',
          heartbeat: hb(5, 2),
          heartbeatAt: 1800,
        }),
        NOW,
      ).reason,
    ).toBe('runs version 5 with data hash x, the log recorded d');
    // the matching hash is SYNCED; an ACK for an older version is not checked (it is APPLYING)
    expect(
      nodeStatus(at({ target, last: ack(5, 2, 'e'.repeat(64)), lastAt: 1500, expectedNodeStateHash }), NOW).status,
    ).toBe('SYNCED');
    expect(nodeStatus(at({ target, last: ack(4, 2, 'a'), lastAt: 1500, expectedNodeStateHash }), NOW).status).toBe(
      'APPLYING',
    );
  });

  it('an ACK of the target whose node-state hash is still being checked is APPLYING, never SYNCED nor STALE (review4 G7)', () => {
    const checking = at({ target, last: ack(5, 2), lastAt: 1500, nodeStateChecking: true });
    expect(nodeStatus(checking, NOW)).toMatchObject({
      status: 'APPLYING',
      reason: 'acked version 5 config 2; checking its node-state hash',
      hashMatch: null,
      appliedVersion: 5,
      lag: 0,
      lastError: null,
    });
    // the wait is the planner's: not STALE however long it takes; a data hash already wrong is ERROR
    expect(nodeStatus(checking, NOW, { silenceMs: 30_000, applyTimeoutMs: 1 }).status).toBe('APPLYING');
    expect(nodeStatus({ ...checking, expectedDataHash: 'f'.repeat(64) }, NOW).status).toBe('ERROR');
    // only about an ACK of the target: one of an older version is APPLYING for what it runs
    expect(nodeStatus({ ...checking, last: ack(4, 2) }, NOW).reason).toBe(
      'running version 4 config 2, target 5 config 2',
    );
  });

  it("an ACK of the target whose data hash differs from the log's hash of that version is ERROR", () => {
    const r = nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500, expectedDataHash: 'f'.repeat(64) }), NOW);
    expect(r).toMatchObject({
      status: 'ERROR',
      reason: 'runs version 5 with data hash d, the log recorded ffffffffffff',
    });
    expect(nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500, expectedDataHash: 'd' }), NOW).status).toBe('SYNCED');
  });

  it('an ACK that says the node is unhealthy is ERROR until a newer report says otherwise', () => {
    const detail = 'resync: the kernel does not match version 5 after a repair';
    const sick = { ...ack(5, 2), healthy: false, detail };
    const r = nodeStatus(at({ target, last: sick, lastAt: 1500, heartbeat: hb(5, 2), heartbeatAt: 1400 }), NOW);
    expect(r).toMatchObject({ status: 'ERROR', reason: `unhealthy: ${detail}`, lastError: detail });
    // the next heartbeat (healthy) is newer: SYNCED; an ACK without the field says nothing about health
    expect(
      nodeStatus(at({ target, last: sick, lastAt: 1500, heartbeat: hb(5, 2), heartbeatAt: 1600 }), NOW).status,
    ).toBe('SYNCED');
    expect(nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500 }), NOW).status).toBe('SYNCED');
  });

  it("is UNKNOWN when the planner's own view is stale, whatever the node reported", () => {
    const r = nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500, viewStale: 'cut off' }), NOW);
    expect(r).toMatchObject({ status: 'UNKNOWN', reason: 'planner view stale: cut off', appliedVersion: 5 });
  });

  it('shows a NACK of the target as ERROR with its error and last good version', () => {
    expect(
      nodeStatus(at({ target, last: nack(5, 2, 'ipset: out of memory', [4, 1]), lastAt: 1500 }), NOW),
    ).toMatchObject({
      status: 'ERROR',
      appliedVersion: 4,
      appliedConfigRevision: 1,
      lastError: 'ipset: out of memory',
      lag: 1,
      reason: expect.stringMatching(/NACK for version 5/),
    });
  });

  it('an ACK for v5 then a heartbeat for v6 is SYNCED on v6 with lag 0 (not "applied 5, lag 1")', () => {
    const r = nodeStatus(
      at({
        target: { version: 6, configRevision: 1 },
        last: ack(5, 1),
        lastAt: 1200,
        heartbeat: hb(6, 1),
        heartbeatAt: 1800,
      }),
      NOW,
    );
    expect(r).toMatchObject({ status: 'SYNCED', appliedVersion: 6, appliedConfigRevision: 1, lag: 0 });
  });

  it('a heartbeat claiming the target with a data hash the log did not record is ERROR, not SYNCED (probe13 R2)', () => {
    const target = { version: 6, configRevision: 1 };
    const claim = (dataHash: string, nodeStateHash = 'H') => ({ ...hb(6, 1), dataHash, nodeStateHash });
    const seen = { target, last: ack(5, 1), lastAt: 1200, heartbeatAt: 1800, expectedDataHash: 'log6' };
    expect(nodeStatus(at({ ...seen, heartbeat: claim('other6') }), NOW)).toMatchObject({
      status: 'ERROR',
      reason: 'runs version 6 with data hash other6, the log recorded log6',
      appliedVersion: 6,
    });
    expect(nodeStatus(at({ ...seen, heartbeat: claim('log6') }), NOW).status).toBe('SYNCED');
    // the node-state hash too, when the planner rendered the node
    const rendered = { ...seen, expectedNodeStateHash: 'H' };
    expect(nodeStatus(at({ ...rendered, heartbeat: claim('log6', 'X') }), NOW)).toMatchObject({
      status: 'ERROR',
      hashMatch: false,
    });
    // a heartbeat newer than the ACK of the target: its hashes are what the node runs now
    const acked = { ...seen, last: { ...ack(6, 1), dataHash: 'log6' }, lastAt: 1200 };
    expect(nodeStatus(at({ ...acked, heartbeat: claim('other6') }), NOW).status).toBe('ERROR');
    // an applier older than the hashes: the numbers, as before
    expect(nodeStatus(at({ ...seen, heartbeat: hb(6, 1) }), NOW).status).toBe('SYNCED');
  });

  it('a node back on its target after a halted rollout was rolled back is SYNCED, not ERROR', () => {
    // node NACKed revision 2 (stays on 1); the rollout was rolled back: its target is revision 1
    // again, and its heartbeats still carry the old complaint.
    const error = 'nft: no such table';
    const r = nodeStatus(
      at({
        target: { version: 1, configRevision: 1 },
        last: nack(1, 2, error, [1, 1]),
        lastAt: 1200,
        heartbeat: hb(1, 1, { healthy: false, detail: error }),
        heartbeatAt: 1800,
      }),
      NOW,
    );
    expect(r).toMatchObject({ status: 'SYNCED', appliedVersion: 1, appliedConfigRevision: 1, lag: 0 });
    // while the rollout still targets revision 2 on that node, it is ERROR
    expect(
      nodeStatus(
        at({
          target: { version: 1, configRevision: 2 },
          last: nack(1, 2, error, [1, 1]),
          lastAt: 1200,
          heartbeat: hb(1, 1, { healthy: false, detail: error }),
          heartbeatAt: 1800,
        }),
        NOW,
      ).status,
    ).toBe('ERROR');
    // an unhealthy heartbeat about something else is still ERROR, on target or not
    expect(
      nodeStatus(
        at({
          target: { version: 1, configRevision: 1 },
          last: ack(1, 1),
          lastAt: 1200,
          heartbeat: hb(1, 1, { healthy: false, detail: 'disk' }),
          heartbeatAt: 1800,
        }),
        NOW,
      ).status,
    ).toBe('ERROR');
  });

  it('shows the mode the node runs now: an auto node that fell back reports nftables', () => {
    const r = nodeStatus(
      at({
        target,
        last: ack(5, 2, 'H', 'ipvs'),
        lastAt: 1200,
        heartbeat: hb(5, 2, { mode: 'nftables' }),
        heartbeatAt: 1800,
      }),
      NOW,
    );
    expect(r.mode).toBe('nftables');
    expect(
      nodeStatus(
        at({
          target,
          last: nack(5, 2, 'x', [4, 1]),
          lastAt: 1900,
          heartbeat: hb(4, 1, { mode: 'nftables' }),
          heartbeatAt: 1800,
        }),
        NOW,
      ).mode,
    ).toBe('nftables');
  });

  it('UNKNOWN when never heard from or silent, STALE past the apply timeout', () => {
    expect(nodeStatus(at({ target }), NOW)).toMatchObject({ status: 'UNKNOWN', appliedVersion: null, lag: 5 });
    expect(nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500 }), 100_000).status).toBe('UNKNOWN');
    expect(nodeStatus(at({ target, heartbeat: hb(4, 2), heartbeatAt: 69_000 }), 70_000).status).toBe('STALE');
  });

  it('counts words for the fleet summary', () => {
    const rows = [
      nodeStatus(at({ target, last: nack(5, 2, 'x', [4, 1]), lastAt: 1500 }), NOW),
      nodeStatus(at({ target }), NOW),
    ];
    expect(summarizeStatus(rows)).toEqual({ SYNCED: 0, APPLYING: 0, STALE: 0, ERROR: 1, UNKNOWN: 1 });
  });
});

describe('the APPLYING → STALE clock counts from a new applier start after the target was set (probe20 P20-6)', () => {
  const target = { version: 5, configRevision: 2 };
  const restarted = { ...hb(0, 0), lastAckedBeforeStart: { version: 4, configRevision: 2 } };
  it('a restarted applier heard after its target aged past the timeout is APPLYING for the timeout from its start, then STALE', () => {
    // target set at 1 s, the applier restarted at 100 s (the old rule: STALE at once, 99 s old)
    const o = at({ target, sessionStartAt: 100_000, heartbeat: restarted, heartbeatAt: 119_000 });
    expect(nodeStatus(o, 120_000)).toMatchObject({
      status: 'APPLYING',
      reason: 'restarted (last ACKed version 4 config 2 before, not yet verified), target 5 config 2',
    });
    expect(nodeStatus({ ...o, heartbeatAt: 160_500 }, 161_000)).toMatchObject({
      status: 'STALE',
      reason:
        'restarted (last ACKed version 4 config 2 before, not yet verified), target 5 config 2 set 160 s ago, its applier started 61 s ago',
    });
  });

  it('a node whose applier never restarted is STALE past the timeout from the target, as before', () => {
    const o = at({ target, heartbeat: hb(4, 2), heartbeatAt: 119_000 });
    expect(nodeStatus(o, 120_000)).toMatchObject({
      status: 'STALE',
      reason: 'running version 4 config 2, target 5 config 2 set 119 s ago',
    });
    // a start before the target was set does not move the clock
    expect(nodeStatus({ ...o, sessionStartAt: 500 }, 120_000).status).toBe('STALE');
  });

  it('ApplyClock: the first start after the target counts; later ones (a crash loop) do not until the node ran its target', () => {
    const set = applyClock(1000);
    const first = applyClockOnSessionStart(set, 100_000);
    expect(first).toEqual({ targetSetAt: 1000, sessionStartAt: 100_000, graceSpent: true });
    // second and third restarts before it ever applied: the clock stays at the first
    expect(applyClockOnSessionStart(applyClockOnSessionStart(first, 130_000), 170_000)).toEqual(first);
    // it applied (ran its target): the next start (another applier rollout) counts again
    // a report of the target from before that start (an ACK a new leader seeds from its log) is not it
    expect(applyClockOnTarget(first, 99_000)).toEqual(first);
    const ran = applyClockOnTarget(first, 101_000);
    expect(applyClockOnSessionStart(ran, 300_000)).toEqual({
      targetSetAt: 1000,
      sessionStartAt: 300_000,
      graceSpent: true,
    });
    // a start heard before the target was set, or with no target (no clock), changes nothing
    expect(applyClockOnSessionStart(set, 500)).toEqual(set);
    expect(applyClockOnSessionStart(undefined, 500)).toBeUndefined();
  });
});

describe('newestHealth: the verdict shown and gated on', () => {
  const healthy = { verdict: 'healthy' as const, stateVerified: true, reason: 'probe ok', probe: null, at: 'T1' };
  const sick = { ...healthy, verdict: 'unhealthy' as const, reason: 'probe failed', at: 'T2' };
  it("takes the heartbeat's verdict when the heartbeat is at least as new as the ACK, with the revision it is about", () => {
    const o = {
      last: { ...ack(5, 2), health: healthy },
      lastAt: 1000,
      heartbeat: { ...hb(5, 2), health: sick },
      heartbeatAt: 1500,
    };
    expect(newestHealth(o)).toMatchObject({ verdict: 'unhealthy', configRevision: 2 });
    expect(newestHealth({ ...o, heartbeatAt: 900 })).toMatchObject({ verdict: 'healthy', configRevision: 2 });
    expect(nodeStatus(at({ target, ...o }), NOW).health).toMatchObject({
      verdict: 'unhealthy',
      reason: 'probe failed',
      configRevision: 2,
    });
  });
  const target = { version: 5, configRevision: 2 };
  it('is absent from appliers that send none, and a NACK carries none', () => {
    expect(newestHealth({ last: ack(5, 2), lastAt: 1000, heartbeat: hb(5, 2), heartbeatAt: 1500 })).toBeUndefined();
    expect(newestHealth({ last: nack(5, 2, 'x', [4, 1]), lastAt: 1000 })).toBeUndefined();
    expect(nodeStatus(at({ target, last: ack(5, 2), lastAt: 1500 }), NOW).health).toBeNull();
  });
  it('a node on its target whose newest verdict is unhealthy is ERROR, never SYNCED (C1: the dataplane itself is broken)', () => {
    const row = nodeStatus(at({ target, last: { ...ack(5, 2), health: sick }, lastAt: 1500 }), NOW);
    expect(row).toMatchObject({
      status: 'ERROR',
      reason: 'dataplane unhealthy: probe failed',
      health: { verdict: 'unhealthy' },
    });
    // the heartbeat's verdict is the newest: a healthy ACK followed by an unhealthy re-probe is ERROR ...
    const hbSick = { ...hb(5, 2), health: sick };
    const later = {
      target,
      last: { ...ack(5, 2), health: healthy },
      lastAt: 1000,
      heartbeat: hbSick,
      heartbeatAt: 1500,
    };
    expect(nodeStatus(at(later), NOW).status).toBe('ERROR');
    // ... and a healthy re-probe after it makes the node SYNCED again; unprobed does not count against it
    const well = { ...later, heartbeat: { ...hb(5, 2), health: healthy }, heartbeatAt: 2000 };
    expect(nodeStatus(at(well), NOW).status).toBe('SYNCED');
    const unprobed = { ...healthy, verdict: 'unprobed' as const, reason: 'no probe possible' };
    expect(nodeStatus(at({ ...well, heartbeat: { ...hb(5, 2), health: unprobed } }), NOW).status).toBe('SYNCED');
  });
});

// probe15 U7: appliers that do not know fields of their targets, one WARNING per set of fields
describe('unknownFieldsWarnings', () => {
  const f = { paths: ['nodes[].beingRemoved'], otherKeys: 0 };
  it('names one node, or the first few nodes and how many more, per distinct set of fields', () => {
    const rows = [
      { node: 'a', unknownTargetFields: f },
      { node: 'ok', unknownTargetFields: null },
      { node: 'older', unknownTargetFields: undefined }, // a planner of the release before the field
      ...['b', 'c', 'd', 'e', 'f', 'g'].map((node) => ({ node, unknownTargetFields: f })),
      { node: 'h', unknownTargetFields: { paths: ['services[].x', 'nodes[].y'], otherKeys: 4990 } },
    ];
    expect(unknownFieldsWarnings(rows)).toEqual([
      'a, b, c, d, e and 2 more nodes: their appliers do not know target fields nodes[].beingRemoved (they apply their targets without them): appliers of an older release than the planner; upgrade them',
      "h's applier does not know target fields services[].x, nodes[].y and 4990 unknown keys at other paths (it applies its targets without them): an applier of an older release than the planner; upgrade it",
    ]);
    expect(unknownFieldsWarnings([{ node: 'ok', unknownTargetFields: null }])).toEqual([]);
  });
  it('is carried on the row from the newest heartbeat, and leaves the word alone', () => {
    const o: NodeObservation = {
      node: 'n1',
      target: { version: 1, configRevision: 1 },
      last: ack(1, 1),
      lastAt: 0,
      heartbeat: { ...hb(1, 1), unknownTargetFields: f },
      heartbeatAt: 1,
    };
    const r = nodeStatus(o, 2);
    expect(r.status).toBe('SYNCED');
    expect(r.unknownTargetFields).toEqual(f);
  });
});
