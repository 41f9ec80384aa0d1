import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WAVE_POLICY,
  decideRollout,
  parseWaves,
  planWaves,
  startRollout,
  type ConfigTargetState,
  type NodeReport,
} from '../../../libs/control/index.ts';

// A node whose Node is deleted while a rollout runs (a scale-down, a replacement) never ACKs: the
// rollout passes it over instead of failing on it at the wave timeout.
const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const nodes = ['a', 'b', 'c', 'd'];
const base: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
const policy = { ...DEFAULT_WAVE_POLICY, waveTimeoutMs: 60_000, bakeMs: 0, maxFailures: '0' };
const start = () =>
  startRollout(base, {
    configRevision: 2,
    waves: planWaves(nodes, parseWaves('1,100%')),
    pauseOnError: false,
    at: at(0),
    policy,
  });
const acks = (...ns: string[]) => new Map<string, NodeReport>(ns.map((n) => [n, { type: 'ACK', configRevision: 2 }]));

describe('rollout waves and nodes that left the fleet', () => {
  it('a wave node no longer in the fleet is not waited for: the wave completes, the reason names it', () => {
    let s = decideRollout(start(), acks('a'), at(1), undefined, new Set(nodes)).state;
    expect(s.rollout).toMatchObject({ wave: 1, status: 'running' });
    // c's Node is deleted; a, b and d ACK: the rollout completes without waiting for c
    const d = decideRollout(s, acks('a', 'b', 'd'), at(2), undefined, new Set(['a', 'b', 'd']));
    expect(d.decision).toEqual({
      kind: 'complete',
      reason: 'revision 2 is the cluster default: every wave ACKed (not waited for, no longer in the fleet: c)',
    });
    expect(d.state.defaultRevision).toBe(2);
    // without the fleet (as before), c holds the wave and fails it at the timeout
    s = decideRollout(s, acks('a', 'b', 'd'), at(2)).state;
    expect(s.rollout!.status).toBe('running');
    const late = decideRollout(s, acks('a', 'b', 'd'), at(61));
    expect(late.decision?.kind).toBe('timeout');
  });

  it('a departed node never times the wave out; one that comes back is waited for again', () => {
    const s = decideRollout(start(), acks('a'), at(1), undefined, new Set(nodes)).state;
    // past the timeout, b, c silent, d departed: b and c fail, d is not named
    const late = decideRollout(s, acks('a'), at(70), undefined, new Set(['a', 'b', 'c']));
    expect(late.decision?.kind).toBe('timeout');
    expect(late.decision?.reason).toMatch(/b \(no ACK.*c \(no ACK/);
    expect(late.decision?.reason).not.toMatch(/\bd \(/);
    // d back before the wave is done: it is waited for again
    const back = decideRollout(s, acks('a', 'b', 'c'), at(3), undefined, new Set(nodes));
    expect(back.decision).toBeUndefined();
    expect(back.state.rollout!.status).toBe('running');
  });

  it('a wave all of whose nodes left before one ACKed is not passed (probe20 P20-1): it waits, then fails them at the timeout', () => {
    // the canary a leaves before it ACKs: nothing proved revision 2, wave 2 must not start
    const gone = new Set(['b', 'c', 'd']);
    const early = decideRollout(start(), new Map(), at(5), undefined, gone);
    expect(early.decision).toBeUndefined();
    expect(early.state.rollout).toMatchObject({ wave: 0, status: 'running' });
    const late = decideRollout(early.state, new Map(), at(61), undefined, gone);
    expect(late.decision).toEqual({
      kind: 'timeout',
      reason:
        'rollout halted: 1 failed node(s), 0 tolerated by --max-failures 0: a (left the fleet before wave 1 passed, and no node of the wave still in it ACKed revision 2)',
    });
    // a node of the wave still in the fleet that ACKed is proof enough: the departed one is passed over
    const two = startRollout(base, {
      configRevision: 2,
      waves: planWaves(nodes, parseWaves('2,100%')),
      pauseOnError: false,
      at: at(0),
      policy,
    });
    // a canary that ACKed, baked a while and was then scaled away leaves nothing to prove R either
    const baking = startRollout(base, {
      configRevision: 2,
      waves: planWaves(nodes, parseWaves('1,100%')),
      pauseOnError: false,
      at: at(0),
      policy: { ...policy, bakeMs: 120_000 },
    });
    const baked = decideRollout(baking, acks('a'), at(1), undefined, new Set(nodes)).state;
    expect(baked.rollout!.bakeStartedAt).toBe(at(1));
    expect(decideRollout(baked, new Map(), at(121), undefined, gone).decision?.reason).toMatch(
      /: a \(left the fleet before wave 1 passed, and no node of the wave still in it ACKed revision 2\)$/,
    );
    const passed = decideRollout(two, acks('b'), at(5), undefined, gone);
    expect(passed.decision?.reason).toBe(
      'wave 2 of 2 starts: wave 1 ACKed revision 2 (not waited for, no longer in the fleet: a)',
    );
  });

  it('a node that ACKed and then fell silent fails its wave (probe20 P20-2): the bake proves nothing of it', () => {
    const baking = { ...policy, bakeMs: 30_000 };
    let s = startRollout(base, {
      configRevision: 2,
      waves: planWaves(nodes, parseWaves('1,100%')),
      pauseOnError: false,
      at: at(0),
      policy: baking,
    });
    s = decideRollout(s, acks('a'), at(1), undefined, new Set(nodes)).state;
    expect(s.rollout!.bakeStartedAt).toBe(at(1));
    const silent = new Map<string, NodeReport>([['a', { type: 'ACK', configRevision: 2, silent: 'silent for 31 s' }]]);
    const d = decideRollout(s, silent, at(32), undefined, new Set(nodes));
    expect(d.decision).toEqual({
      kind: 'halt',
      reason:
        'rollout halted: 1 failed node(s), 0 tolerated by --max-failures 0: a (silent for 31 s after it ACKed revision 2: what it runs now is not known)',
    });
  });
});
