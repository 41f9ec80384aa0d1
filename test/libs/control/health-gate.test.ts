import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WAVE_POLICY,
  configOverrides,
  decideRollout,
  parseWaves,
  planWaves,
  startRollout,
  type ConfigTargetState,
  type NodeHealth,
  type NodeReport,
  type WavePolicy,
} from '../../../libs/control/index.ts';

// The health verdict as data in the rollout decision (issue 16 item 2): a node of the wave that
// ACKed the new revision but whose verdict is (or turns) unhealthy fails the wave, like a NACK.
const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const nodes = ['a', 'b', 'c', 'd'];
const base: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
const start = (policy: Partial<WavePolicy>, waves = '1,50%,100%', pauseOnError = false) =>
  startRollout(base, {
    configRevision: 2,
    waves: planWaves(nodes, parseWaves(waves)),
    pauseOnError,
    at: at(0),
    policy: { ...DEFAULT_WAVE_POLICY, ...policy },
  });
const healthy: NodeHealth = { verdict: 'healthy', reason: 'probe: 3/3 virtual servers answered' };
const sick: NodeHealth = {
  verdict: 'unhealthy',
  reason: 'probe: 2 of 2 virtual servers failed: tcp/10.96.0.1:80: timed out after 1s',
};
const unprobed: NodeHealth = { verdict: 'unprobed', reason: 'dry-run: no dataplane to probe' };
const acks = (health: Record<string, NodeHealth | undefined>, rev = 2) =>
  new Map<string, NodeReport>(
    Object.entries(health).map(([n, h]) => [n, { type: 'ACK', configRevision: rev, health: h }]),
  );

describe('health verdicts in the rollout decision', () => {
  it('an ACK that carries an unhealthy verdict fails the wave at once and halts (the canary goes back)', () => {
    const d = decideRollout(start({ bakeMs: 30_000 }), acks({ a: sick }), at(2));
    expect(d.decision?.kind).toBe('halt');
    expect(d.decision?.reason).toBe(
      `rollout halted: 1 failed node(s), 0 tolerated by --max-failures 0: a (unhealthy: ${sick.reason})`,
    );
    expect(d.state.rollout).toMatchObject({
      status: 'halted',
      wave: 0,
      haltedBy: { node: 'a', error: `unhealthy: ${sick.reason}` },
    });
    expect(configOverrides(d.state).size).toBe(0);
    expect(d.state.defaultRevision).toBe(1);
  });

  it('a verdict that turns unhealthy during the bake fails the wave before the next one starts', () => {
    let d = decideRollout(start({ bakeMs: 30_000 }), acks({ a: healthy }), at(1));
    expect(d.decision?.kind).toBe('bake');
    const baking = d.state;
    expect(decideRollout(baking, acks({ a: healthy }), at(20)).state).toBe(baking);
    d = decideRollout(baking, acks({ a: sick }), at(20));
    expect(d.decision?.kind).toBe('halt');
    expect(d.state.rollout).toMatchObject({ status: 'halted', wave: 0 });
    // Had it stayed healthy, wave 2 would have started when the bake ended.
    expect(decideRollout(baking, acks({ a: healthy }), at(31)).decision?.kind).toBe('advance');
  });

  it('an unhealthy verdict about another revision does not count (the node runs the old one)', () => {
    const s = start({});
    expect(decideRollout(s, acks({ a: sick }, 1), at(1)).state).toBe(s);
  });

  it('unprobed nodes and appliers without a verdict pass on their ACK alone (never counted healthy by probe)', () => {
    expect(decideRollout(start({}), acks({ a: unprobed }), at(1)).decision?.kind).toBe('advance');
    expect(decideRollout(start({}), acks({ a: undefined }), at(1)).decision?.kind).toBe('advance');
  });

  it('unhealthy nodes are counted against --max-failures once, like NACKs, and then no longer hold the wave', () => {
    let d = decideRollout(start({ maxFailures: '1' }, '2,100%'), acks({ a: healthy, b: sick }), at(1));
    expect(d.decision?.kind).toBe('tolerate');
    expect(d.decision?.reason).toMatch(/b \(unhealthy: probe: 2 of 2/);
    d = decideRollout(d.state, acks({ a: healthy, b: sick }), at(2));
    expect(d.decision?.kind).toBe('advance');
    d = decideRollout(d.state, acks({ a: healthy, b: sick, c: healthy, d: sick }), at(3));
    expect(d.decision?.kind).toBe('halt');
    expect(d.state.rollout!.failed!.map((f) => f.node)).toEqual(['b', 'd']);
  });

  it('with --pause-on-error an unhealthy canary pauses the rollout and keeps its override for inspection', () => {
    const d = decideRollout(start({}, '1,100%', true), acks({ a: sick }), at(1));
    expect(d.state.rollout).toMatchObject({ status: 'paused', haltedBy: { node: 'a' } });
    expect([...configOverrides(d.state)]).toEqual([['a', 2]]);
  });
});
