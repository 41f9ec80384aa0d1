import { describe, expect, it } from 'vitest';
import {
  rollbackConfig,
  DEFAULT_WAVE_POLICY,
  allowedFailures,
  configOverrides,
  decideRollout,
  formatMs,
  nextRolloutDeadline,
  parseMaxFailures,
  parsePauseBefore,
  parseWaves,
  planWaves,
  promoteRollout,
  readWavePolicy,
  resumeRollout,
  startRollout,
  type ConfigTargetState,
  type NodeReport,
  type WavePolicy,
} from '../../../libs/control/index.ts';

// Time is data here: `at(s)` is s seconds after the rollout started.
const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const nodes = ['a', 'b', 'c', 'd'];
const base: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
const start = (policy: Partial<WavePolicy>, pauseOnError = false, waves = '1,50%,100%') =>
  startRollout(base, {
    configRevision: 2,
    waves: planWaves(nodes, parseWaves(waves)),
    pauseOnError,
    at: at(0),
    policy: { ...DEFAULT_WAVE_POLICY, ...policy },
  });
const reports = (acks: string[], nacks: string[] = [], rev = 2) =>
  new Map<string, NodeReport>([
    ...acks.map((n): [string, NodeReport] => [n, { type: 'ACK', configRevision: rev }]),
    ...nacks.map((n): [string, NodeReport] => [n, { type: 'NACK', configRevision: rev, error: `${n} broke` }]),
  ]);

describe('wave policy: parsing', () => {
  it('reads a policy over the defaults and refuses bad parts by name', () => {
    expect(readWavePolicy({})).toEqual(DEFAULT_WAVE_POLICY);
    expect(readWavePolicy({ bakeMs: 30_000, waveTimeoutMs: 60_000, maxFailures: '10%', pauseBefore: [3, 2] })).toEqual({
      bakeMs: 30_000,
      waveTimeoutMs: 60_000,
      maxFailures: '10%',
      pauseBefore: [2, 3],
    });
    expect(readWavePolicy({ maxFailures: 2, pauseBefore: '2' })).toMatchObject({ maxFailures: '2', pauseBefore: [2] });
    expect(() => readWavePolicy({ bakeMs: -1 })).toThrow(/^bakeMs must be/);
    expect(() => readWavePolicy({ bakeMs: '30s' })).toThrow(/^bakeMs must be/);
    expect(() => readWavePolicy({ waveTimeoutMs: 0 })).toThrow(/^waveTimeoutMs must be/);
    expect(() => readWavePolicy({ waveTimeoutMs: 8 * 86_400_000 })).toThrow(/^waveTimeoutMs must be/);
    expect(() => readWavePolicy({ maxFailures: 'lots' })).toThrow(/^max-failures:/);
    expect(() => readWavePolicy({ pauseBefore: { w: 2 } })).toThrow(/^pauseBefore must be/);
  });

  it('checks failure budgets and gates as written', () => {
    expect(parseMaxFailures('0')).toBe('0');
    expect(parseMaxFailures(' 25% ')).toBe('25%');
    for (const bad of ['-1', '1.5', '101%', '%', '', 'x'])
      expect(() => parseMaxFailures(bad)).toThrow(/^max-failures:/);
    expect(parsePauseBefore('4,2,2')).toEqual([2, 4]);
    for (const bad of ['1', '0', 'two', '', '2,x']) expect(() => parsePauseBefore(bad)).toThrow(/^pause-before:/);
  });

  it('turns a share of the fleet into a node count, rounding down', () => {
    const p = (maxFailures: string) => ({ ...DEFAULT_WAVE_POLICY, maxFailures });
    expect(allowedFailures(p('3'), 10)).toBe(3);
    expect(allowedFailures(p('10%'), 10)).toBe(1);
    expect(allowedFailures(p('10%'), 9)).toBe(0);
    expect(allowedFailures(p('100%'), 7)).toBe(7);
  });

  it('formats durations as operators write them', () => {
    expect([0, 500, 30_000, 90_000, 3_600_000, 86_400_000 + 61_000].map(formatMs)).toEqual([
      '0s',
      '500ms',
      '30s',
      '1m30s',
      '1h',
      '1d1m1s',
    ]);
  });

  it('refuses a gate before a wave the rollout does not have', () => {
    expect(() => start({ pauseBefore: [4] })).toThrow(/^pause-before: wave 4 does not exist, this rollout has 3 wave/);
  });
});

describe('wave policy: decisions', () => {
  it('with the defaults advances as soon as a wave ACKed (no bake), as before policies', () => {
    const s = decideRollout(start({}), reports(['a']), at(1));
    expect(s.decision?.kind).toBe('advance');
    expect(s.state.rollout).toMatchObject({ wave: 1, waveStartedAt: at(1) });
  });

  it('bakes: starts the clock when the wave ACKed and advances only once the bake passed', () => {
    let s = start({ bakeMs: 30_000 });
    let d = decideRollout(s, reports(['a']), at(5));
    expect(d.decision).toEqual({ kind: 'bake', reason: 'wave 1 of 3 ACKed revision 2: baking for 30s' });
    s = d.state;
    expect(s.rollout!.bakeStartedAt).toBe(at(5));
    expect(nextRolloutDeadline(s)).toBe(T0 + 35_000);
    // Within the bake: nothing happens, the same state object comes back.
    expect(decideRollout(s, reports(['a']), at(34)).state).toBe(s);
    d = decideRollout(s, reports(['a']), at(35));
    expect(d.decision?.kind).toBe('advance');
    expect(d.decision?.reason).toMatch(/wave 2 of 3 starts: wave 1 ACKed revision 2 and baked 30s/);
    expect(d.state.rollout).toMatchObject({ wave: 1, waveStartedAt: at(35), bakeStartedAt: undefined });
    // The last wave bakes too before the revision becomes the default.
    s = decideRollout(d.state, reports(['a', 'b']), at(36)).state;
    s = decideRollout(s, reports(['a', 'b']), at(66)).state;
    s = decideRollout(s, reports(nodes), at(67)).state;
    expect(s.rollout!.status).toBe('running');
    d = decideRollout(s, reports(nodes), at(96));
    expect(d.state.rollout!.status).toBe('running');
    d = decideRollout(s, reports(nodes), at(97));
    expect(d.decision?.kind).toBe('complete');
    expect(d.state.defaultRevision).toBe(2);
  });

  it('a NACK during bake fails the wave', () => {
    const s = decideRollout(start({ bakeMs: 30_000 }), reports(['a']), at(1)).state;
    const d = decideRollout(s, reports([], ['a']), at(10));
    expect(d.decision?.kind).toBe('halt');
    expect(d.state.rollout).toMatchObject({ status: 'halted', haltedBy: { node: 'a', error: 'a broke' } });
    expect(configOverrides(d.state).size).toBe(0);
  });

  it('times out a silent node: halts and sends the touched nodes back', () => {
    const s = start({ waveTimeoutMs: 60_000 });
    expect(nextRolloutDeadline(s)).toBe(T0 + 60_000);
    expect(decideRollout(s, reports([]), at(59)).state).toBe(s);
    const d = decideRollout(s, reports([]), at(60));
    expect(d.decision?.kind).toBe('timeout');
    expect(d.decision?.reason).toMatch(
      /rollout halted: 1 failed node\(s\), 0 tolerated by --max-failures 0: a \(no ACK of revision 2 within the wave timeout of 1m\)/,
    );
    expect(d.state.rollout!.status).toBe('halted');
    expect(configOverrides(d.state).size).toBe(0);
    expect(d.state.defaultRevision).toBe(1);
  });

  it('counts the timeout from the start of the current wave, not of the rollout', () => {
    const s = decideRollout(start({ waveTimeoutMs: 60_000 }), reports(['a']), at(50)).state; // wave 2 starts at 50s
    expect(decideRollout(s, reports(['a']), at(100)).state).toBe(s);
    expect(decideRollout(s, reports(['a']), at(110)).decision?.kind).toBe('timeout');
  });

  it('tolerates failures up to the budget, then halts on the next one', () => {
    let s = start({ maxFailures: '1', waveTimeoutMs: 60_000 }, false, '2,100%');
    let d = decideRollout(s, reports(['a'], ['b']), at(1));
    expect(d.decision?.kind).toBe('tolerate');
    expect(d.decision?.reason).toMatch(/failure tolerated \(1 of 1 allowed by --max-failures 1\): b \(b broke\)/);
    s = d.state;
    expect(s.rollout!.status).toBe('running');
    // The failed node no longer holds the wave back.
    d = decideRollout(s, reports(['a'], ['b']), at(2));
    expect(d.decision?.kind).toBe('advance');
    s = d.state;
    expect(s.rollout!.wave).toBe(1);
    // A failed node is counted once, however often it reports.
    expect(decideRollout(s, reports(['a', 'c'], ['b']), at(3)).state).toBe(s);
    d = decideRollout(s, reports(['a', 'c'], ['b']), at(62));
    expect(d.decision?.kind).toBe('timeout');
    expect(d.state.rollout!.failed!.map((f) => f.node)).toEqual(['b', 'd']);
  });

  it('a share budget is taken of the whole fleet', () => {
    // 50% of 4 nodes tolerates 2 failures.
    let s = start({ maxFailures: '50%' }, false, '100%');
    s = decideRollout(s, reports(['a', 'b'], ['c']), at(1)).state;
    s = decideRollout(s, reports(['a', 'b'], ['c', 'd']), at(2)).state;
    expect(s.rollout!.status).toBe('running');
    const d = decideRollout(s, reports(['a', 'b'], ['c', 'd']), at(3));
    expect(d.decision?.kind).toBe('complete');
  });

  it('pauses at a gate after the bake and waits for promote', () => {
    let s = start({ pauseBefore: [2], bakeMs: 10_000 });
    s = decideRollout(s, reports(['a']), at(1)).state;
    const d = decideRollout(s, reports(['a']), at(11));
    expect(d.decision).toEqual({
      kind: 'gate',
      reason: 'wave 1 ACKed and baked 10s; wave 2 waits for promote (--pause-before 2)',
    });
    s = d.state;
    expect(s.rollout).toMatchObject({ status: 'paused', gate: 2, wave: 0 });
    expect([...configOverrides(s)]).toEqual([['a', 2]]);
    // Paused: no timeout, no advance, however long.
    expect(decideRollout(s, reports(['a', 'b']), at(10_000)).state).toBe(s);
    expect(nextRolloutDeadline(s)).toBeUndefined();
    expect(() => resumeRollout(s, at(20))).toThrow(/waits at the gate before wave 2: promote it/);
    s = promoteRollout(s, at(20));
    expect(s.rollout).toMatchObject({ status: 'running', wave: 1, gate: undefined, waveStartedAt: at(20) });
    expect([...configOverrides(s).keys()]).toEqual(['a', 'b']);
    expect(() => promoteRollout(s, at(21))).toThrow(/no rollout waits at a --pause-before gate/);
  });

  it('a rollback at a gate closes it: nothing is left to promote', () => {
    let s = start({ pauseBefore: [2] });
    s = decideRollout(s, reports(['a']), at(1)).state;
    expect(s.rollout).toMatchObject({ status: 'paused', gate: 2 });
    const rb = rollbackConfig(s, undefined, at(2));
    expect(rb.rollout).toMatchObject({ status: 'rolled-back', gate: undefined });
    expect(() => promoteRollout(rb, at(3))).toThrow(/no rollout waits at a --pause-before gate/);
  });

  it('with --pause-on-error pauses instead of halting; resume forgives the failures and restarts the wave clock', () => {
    let s = start({ waveTimeoutMs: 60_000 }, true);
    s = decideRollout(s, reports([]), at(60)).state;
    expect(s.rollout).toMatchObject({ status: 'paused', haltedBy: { node: 'a' } });
    expect([...configOverrides(s)]).toEqual([['a', 2]]);
    s = resumeRollout(s, at(100));
    expect(s.rollout).toMatchObject({ status: 'running', failed: [], waveStartedAt: at(100) });
    expect(decideRollout(s, reports([]), at(159)).state).toBe(s);
    expect(decideRollout(s, reports(['a']), at(159)).decision?.kind).toBe('advance');
  });

  it('reads rollouts recorded before policies with the defaults', () => {
    const old: ConfigTargetState = {
      defaultRevision: 1,
      previousDefault: undefined,
      rollout: {
        configRevision: 2,
        fromRevision: 1,
        waves: [['a']],
        wave: 0,
        status: 'running',
        pauseOnError: false,
        startedAt: at(0),
        updatedAt: at(0),
      },
    };
    expect(decideRollout(old, reports([]), at(599)).state).toBe(old);
    expect(decideRollout(old, reports([]), at(600)).decision?.kind).toBe('timeout');
  });
});
