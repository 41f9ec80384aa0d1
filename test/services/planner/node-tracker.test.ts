import { describe, expect, it } from 'vitest';
import type { Ack, Heartbeat } from '../../../libs/model/index.ts';
import { NodeTracker } from '../../../services/planner/node-tracker.ts';

const verdict = (v: 'healthy' | 'unhealthy', reason: string) => ({
  verdict: v,
  stateVerified: true,
  reason,
  probe: null,
  at: 'T',
});
const ack = (configRevision: number, health?: ReturnType<typeof verdict>): Ack => ({
  type: 'ACK',
  node: 'n1',
  version: 3,
  configRevision,
  dataHash: 'd',
  nodeStateHash: 'h',
  mode: 'nftables',
  kernelWrites: 0,
  timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
  ...(health ? { health } : {}),
  at: 'T',
});
const hb = (appliedConfigRevision: number, health: ReturnType<typeof verdict>): Heartbeat => ({
  node: 'n1',
  appliedVersion: 3,
  appliedConfigRevision,
  mode: 'nftables',
  healthy: true,
  detail: '',
  health,
  at: 'T',
});

describe('NodeTracker.report: the verdict rollouts gate on', () => {
  it("carries the ACK's verdict, then a newer heartbeat's about the same revision", () => {
    const t = new NodeTracker();
    t.onAck(ack(2, verdict('healthy', 'ok')), 1000);
    expect(t.report('n1')).toEqual({
      type: 'ACK',
      configRevision: 2,
      error: undefined,
      health: { verdict: 'healthy', reason: 'ok' },
    });
    t.onHeartbeat(hb(2, verdict('unhealthy', 'probe failed')), 2000);
    expect(t.report('n1')?.health).toEqual({ verdict: 'unhealthy', reason: 'probe failed' });
  });

  it('ignores a heartbeat verdict about another revision than the one the node answered for', () => {
    const t = new NodeTracker();
    t.onAck(ack(2, verdict('healthy', 'ok')), 1000);
    t.onHeartbeat(hb(1, verdict('unhealthy', 'old revision')), 2000);
    expect(t.report('n1')?.health).toBeUndefined();
  });

  it('has no verdict for an applier that sends none', () => {
    const t = new NodeTracker();
    t.onAck(ack(2), 1000);
    expect(t.report('n1')).toEqual({ type: 'ACK', configRevision: 2, error: undefined, health: undefined });
  });
});

describe('NodeTracker.report: ACKs checked against the hashes the planner expects', () => {
  it('marks an ACK whose node-state or data hash differs, and leaves a matching one alone', () => {
    const t = new NodeTracker();
    t.onAck(ack(2), 1000);
    expect(t.report('n1', () => ({ nodeStateHash: 'h', dataHash: 'd' }))?.mismatch).toBeUndefined();
    expect(t.report('n1', () => ({ nodeStateHash: 'e' }))?.mismatch).toBe(
      'runs version 3 config 2 with node-state hash h, the planner renders e',
    );
    expect(t.report('n1', () => ({ dataHash: 'f' }))?.mismatch).toBe(
      'runs version 3 with data hash d, the log recorded f',
    );
    expect(t.report('n1')?.mismatch).toBeUndefined(); // nothing expected: nothing checked
  });
});

describe('NodeTracker: two applier processes reporting as one node', () => {
  const target = { version: 3, configRevision: 2 };
  const beat = (instance: string): Heartbeat => ({ ...hb(2, verdict('healthy', 'ok')), instance });

  it('a restart (a new instance id, the old one silent) is not flagged', () => {
    const t = new NodeTracker();
    t.onAck({ ...ack(2), instance: 'a' }, 1000);
    t.onHeartbeat(beat('a'), 2000);
    t.onHeartbeat(beat('b'), 3000);
    t.onAck({ ...ack(2), instance: 'b' }, 4000);
    expect(t.row('n1', target, {}, 4000).status).toBe('SYNCED');
  });

  it('ids that alternate make the node ERROR naming both, until a silence window passes without it', () => {
    const t = new NodeTracker({ silenceMs: 30_000, applyTimeoutMs: 60_000 });
    t.onAck({ ...ack(2), instance: 'b' }, 1000);
    t.onHeartbeat(beat('a'), 2000);
    t.onHeartbeat(beat('b'), 3000);
    expect(t.row('n1', target, {}, 3000)).toMatchObject({
      status: 'ERROR',
      reason: 'two appliers report as n1 (instances a, b)',
    });
    // a rollout wave does not count the ACK either: the node's report carries it as a mismatch
    expect(t.report('n1', undefined, 3000)?.mismatch).toBe('two appliers report as n1 (instances a, b)');
    expect(t.report('n1', undefined, 3000)?.mismatch).toBe('two appliers report as n1 (instances a, b)');
    // only b from now on: the flag ends one window after the last alternation
    for (let at = 8000; at <= 38_000; at += 5000) t.onHeartbeat(beat('b'), at);
    expect(t.row('n1', target, {}, 38_000).status).toBe('SYNCED');
    expect(t.report('n1', undefined, 38_000)?.mismatch).toBeUndefined();
  });
});

describe('NodeTracker: the APPLYING → STALE clock across applier restarts (probe20 P20-6)', () => {
  const target = { version: 5, configRevision: 2 };
  const thresholds = { silenceMs: 30_000, applyTimeoutMs: 60_000 };
  const beat = (instance: string, v: number, c: number): Heartbeat => ({
    node: 'n1',
    appliedVersion: v,
    appliedConfigRevision: c,
    mode: 'nftables',
    healthy: true,
    detail: '',
    instance,
    at: 'T',
  });
  const word = (t: NodeTracker, nowMs: number) => t.row('n1', target, {}, nowMs).status;
  /** A tracker whose target for n1 was set at 0 and whose applier (instance a) ran 4/2 until it stopped. */
  const aged = () => {
    const t = new NodeTracker(thresholds, 0);
    t.noteTarget('n1', target, 0);
    t.onHeartbeat(beat('a', 4, 2), 1000);
    return t;
  };

  it('a node whose applier never restarts goes STALE past the timeout, as before', () => {
    const t = aged();
    t.onHeartbeat(beat('a', 4, 2), 59_000);
    expect(word(t, 59_500)).toBe('APPLYING');
    t.onHeartbeat(beat('a', 4, 2), 100_000);
    expect(word(t, 100_500)).toBe('STALE');
  });

  it('a new applier process heard after the target aged is APPLYING for the timeout from its start, then STALE', () => {
    const t = aged();
    t.onHeartbeat(beat('b', 0, 0), 100_000); // restarted (a DaemonSet upgrade): verified nothing yet
    expect(word(t, 100_500)).toBe('APPLYING');
    t.onHeartbeat(beat('b', 0, 0), 159_000);
    expect(word(t, 159_500)).toBe('APPLYING');
    t.onHeartbeat(beat('b', 0, 0), 161_000);
    expect(t.row('n1', target, {}, 161_000)).toMatchObject({
      status: 'STALE',
      reason:
        'no version verified since its applier started, target 5 config 2 set 161 s ago, its applier started 61 s ago',
    });
  });

  it('second and later restarts before it ran the target (a crash loop) do not start the clock again', () => {
    const t = aged();
    t.onHeartbeat(beat('b', 0, 0), 100_000);
    t.onHeartbeat(beat('c', 0, 0), 150_000);
    t.onHeartbeat(beat('d', 0, 0), 161_000);
    expect(word(t, 161_000)).toBe('STALE');
  });

  it('a restart after the node ran its target has its own timeout (the next applier rollout)', () => {
    const t = aged();
    t.onHeartbeat(beat('b', 0, 0), 100_000);
    t.onHeartbeat(beat('b', 5, 2), 101_000);
    expect(word(t, 101_000)).toBe('SYNCED');
    t.onHeartbeat(beat('c', 0, 0), 300_000);
    expect(word(t, 300_500)).toBe('APPLYING');
    t.onHeartbeat(beat('c', 0, 0), 361_000);
    expect(word(t, 361_000)).toBe('STALE');
  });

  it('a planner taking over (a role change) keeps the clocks and the processes heard: STALE stays STALE', () => {
    const follower = aged();
    follower.onHeartbeat(beat('a', 4, 2), 100_000);
    expect(word(follower, 100_000)).toBe('STALE');
    const leader = new NodeTracker(thresholds, 100_000);
    leader.adoptClocks(follower.clocksHeld());
    leader.noteTarget('n1', target, 100_100); // the new leader writes the same target: the clock goes on
    leader.onHeartbeat(beat('a', 4, 2), 100_200);
    expect(word(leader, 100_200)).toBe('STALE');
    // a new target starts its own clock
    leader.noteTarget('n1', { version: 6, configRevision: 2 }, 100_300);
    expect(leader.row('n1', { version: 6, configRevision: 2 }, {}, 100_300).status).toBe('APPLYING');
  });

  it('a process heard by the planner handed over from is no new start on the one taking over', () => {
    // stuck before its first apply since before the target was set: no start after the target
    const follower = new NodeTracker(thresholds, 0);
    follower.onHeartbeat(beat('b', 0, 0), 500);
    follower.noteTarget('n1', target, 1000);
    follower.onHeartbeat(beat('b', 0, 0), 100_000);
    expect(word(follower, 100_000)).toBe('STALE');
    const leader = new NodeTracker(thresholds, 100_000);
    leader.adoptClocks(follower.clocksHeld());
    leader.noteTarget('n1', target, 100_100);
    leader.onHeartbeat(beat('b', 0, 0), 100_200);
    expect(word(leader, 100_200)).toBe('STALE');
  });

  it('a process new to this tracker that already runs a version did not just start (a new leader hearing it first)', () => {
    const t = new NodeTracker(thresholds, 0);
    t.noteTarget('n1', target, 0);
    t.onHeartbeat(beat('a', 4, 2), 100_000);
    expect(word(t, 100_500)).toBe('STALE');
  });
});
