import { describe, expect, it } from 'vitest';
import {
  configOverrides,
  pauseRollout,
  planWaves,
  parseWaves,
  resumeRollout,
  rollbackConfig,
  startRollout,
  stepRollout,
  type ConfigTargetState,
  type NodeReport,
} from '../../../libs/control/index.ts';

const nodes = ['a', 'b', 'c', 'd'];
const base: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
const t = (i: number) => `2025-01-01T00:00:0${i}Z`;
const start = (pauseOnError = false) =>
  startRollout(base, { configRevision: 2, waves: planWaves(nodes, parseWaves('1,50%,100%')), pauseOnError, at: t(0) });
const acks = (rev: number, ...ns: string[]) =>
  new Map<string, NodeReport>(ns.map((n) => [n, { type: 'ACK', configRevision: rev }]));

describe('config rollout', () => {
  it('advances wave by wave only when the wave ACKed the new revision, then becomes the default', () => {
    let s = start();
    expect([...configOverrides(s)]).toEqual([['a', 2]]);
    // Old-revision ACKs do not count.
    expect(stepRollout(s, acks(1, 'a'), t(1))).toBe(s);
    s = stepRollout(s, acks(2, 'a'), t(1));
    expect(s.rollout!.wave).toBe(1);
    expect([...configOverrides(s).keys()]).toEqual(['a', 'b']);
    // b has not answered yet: no advance.
    expect(stepRollout(s, acks(2, 'a'), t(2)).rollout!.wave).toBe(1);
    s = stepRollout(s, acks(2, 'a', 'b'), t(2));
    expect(s.rollout!.wave).toBe(2);
    s = stepRollout(s, acks(2, 'a', 'b', 'c', 'd'), t(3));
    expect(s.defaultRevision).toBe(2);
    expect(s.previousDefault).toBe(1);
    expect(s.rollout!.status).toBe('completed');
    expect(configOverrides(s).size).toBe(0);
  });

  it('halts on a NACK of the new revision and sends the wave back to the default', () => {
    let s = stepRollout(start(), acks(2, 'a'), t(1));
    const reports = acks(2, 'a');
    reports.set('b', { type: 'NACK', configRevision: 2, error: 'nft: syntax error' });
    s = stepRollout(s, reports, t(2));
    expect(s.rollout!.status).toBe('halted');
    expect(s.rollout!.haltedBy).toEqual({ node: 'b', error: 'nft: syntax error' });
    expect(s.defaultRevision).toBe(1);
    expect(configOverrides(s).size).toBe(0);
    // A halted rollout never advances again, even when everyone ACKs later.
    expect(stepRollout(s, acks(2, 'a', 'b', 'c', 'd'), t(3))).toBe(s);
  });

  it('halts on an ACK whose hashes differ from what the planner expects: it does not count as done', () => {
    const s = start();
    const mismatch = 'runs version 3 config 2 with node-state hash aaaaaaaaaaaa, the planner renders bbbbbbbbbbbb';
    const reports = new Map<string, NodeReport>([['a', { type: 'ACK', configRevision: 2, mismatch }]]);
    const after = stepRollout(s, reports, t(1));
    expect(after.rollout!.wave).toBe(0);
    expect(after.rollout!.status).toBe('halted');
    expect(after.rollout!.haltedBy).toEqual({ node: 'a', error: mismatch });
    expect(after.defaultRevision).toBe(1);
  });

  it('pauses with --pause-on-error, keeps the overrides, and resumes', () => {
    let s = stepRollout(
      start(true),
      new Map([['a', { type: 'NACK', configRevision: 2, error: 'boom' } as NodeReport]]),
      t(1),
    );
    expect(s.rollout!.status).toBe('paused');
    expect([...configOverrides(s)]).toEqual([['a', 2]]);
    s = resumeRollout(s, t(2));
    expect(s.rollout!.status).toBe('running');
    expect(stepRollout(s, acks(2, 'a'), t(3)).rollout!.wave).toBe(1);
  });

  it('pauses by hand: the reached waves keep the revision, no wave starts until resumed', () => {
    let s = pauseRollout(start(), t(1));
    expect(s.rollout!.status).toBe('paused');
    expect([...configOverrides(s)]).toEqual([['a', 2]]);
    expect(stepRollout(s, acks(2, 'a'), t(2))).toBe(s);
    expect(() => pauseRollout(s, t(2))).toThrow(/no running rollout/);
    s = resumeRollout(s, t(3));
    expect(stepRollout(s, acks(2, 'a'), t(4)).rollout!.wave).toBe(1);
  });

  it('refuses a second rollout while one is active and a rollout to the default', () => {
    expect(() => startRollout(start(), { configRevision: 3, waves: [['a']], pauseOnError: false, at: t(1) })).toThrow(
      /^the rollout of config revision 2 is running at wave 1\/\d+: wait for it \(ctl rollout status\), pause it or roll it back first$/,
    );
    // probe11 K9: at a --pause-before gate, waiting does nothing: the line says promote (before:
    // "is still paused; roll back or wait for it")
    const gated = { ...start(), rollout: { ...start().rollout!, status: 'paused' as const, gate: 2 } };
    expect(() => startRollout(gated, { configRevision: 2, waves: [['a']], pauseOnError: false, at: t(1) })).toThrow(
      'the rollout of config revision 2 waits at the gate before wave 2 (a repeat of the request that started it?): promote it (ctl rollout --promote) or roll it back (ctl rollback) first',
    );
    expect(() =>
      startRollout(pauseRollout(start(), t(1)), { configRevision: 3, waves: [['a']], pauseOnError: false, at: t(1) }),
    ).toThrow(/is paused at wave 1\/\d+: resume it \(ctl rollout --resume\) or roll it back \(ctl rollback\) first$/);
    expect(() => startRollout(base, { configRevision: 1, waves: [['a']], pauseOnError: false, at: t(1) })).toThrow(
      /already the cluster default/,
    );
  });

  it('makes the revision the default at once when no node is known', () => {
    const s = startRollout(base, { configRevision: 2, waves: [], pauseOnError: false, at: t(0) });
    expect(s).toEqual({ defaultRevision: 2, previousDefault: 1, earlierDefaults: [1], rollout: undefined });
  });

  it('rolls back instantly: mid-rollout to where it started, afterwards to the previous default, or to a given one', () => {
    const mid = stepRollout(start(), acks(2, 'a'), t(1));
    const rb = rollbackConfig(mid, undefined, t(2));
    expect(rb.defaultRevision).toBe(1);
    expect(rb.rollout!.status).toBe('rolled-back');
    expect(configOverrides(rb).size).toBe(0);

    const done = stepRollout(
      stepRollout(stepRollout(start(), acks(2, 'a'), t(1)), acks(2, 'a', 'b'), t(2)),
      acks(2, ...nodes),
      t(3),
    );
    expect(done.defaultRevision).toBe(2);
    expect(rollbackConfig(done, undefined, t(4)).defaultRevision).toBe(1);
    expect(rollbackConfig(done, 7, t(4)).defaultRevision).toBe(7);
    expect(() => rollbackConfig(base, undefined, t(4))).toThrow(/no previous/);
  });

  it('rolls back through history: a second rollback goes further back, never to the revision just left', () => {
    // Defaults 1 → 2 → 3, each by a completed rollout over the same four nodes.
    const complete = (s: ConfigTargetState, rev: number, i: number): ConfigTargetState => {
      let x = startRollout(s, { configRevision: rev, waves: [nodes], pauseOnError: false, at: t(i) });
      x = stepRollout(x, acks(rev, ...nodes), t(i));
      expect(x.defaultRevision).toBe(rev);
      return x;
    };
    const at3 = complete(complete(base, 2, 1), 3, 2);
    expect(at3).toMatchObject({ defaultRevision: 3, previousDefault: 2, earlierDefaults: [1, 2] });
    const to2 = rollbackConfig(at3, undefined, t(3));
    expect(to2).toMatchObject({ defaultRevision: 2, previousDefault: 1, earlierDefaults: [1] });
    // The completed rollout of 3 is what was rolled back: it says so (the status header showed "completed").
    expect(to2.rollout).toMatchObject({ configRevision: 3, status: 'rolled-back' });
    const to1 = rollbackConfig(to2, undefined, t(4));
    expect(to1).toMatchObject({ defaultRevision: 1, previousDefault: undefined, earlierDefaults: [] });
    // Nothing earlier than 1: refused, never a toggle back to 2 or 3.
    expect(() => rollbackConfig(to1, undefined, t(5))).toThrow(/no previous config revision/);
    // An explicit revision is a jump: back into history forgets what came after it, forward records the current one.
    expect(rollbackConfig(at3, 1, t(6))).toMatchObject({ defaultRevision: 1, earlierDefaults: [] });
    expect(rollbackConfig(to1, 3, t(6))).toMatchObject({
      defaultRevision: 3,
      previousDefault: 1,
      earlierDefaults: [1],
    });
    // A state recorded before earlierDefaults existed: its previousDefault is the history.
    const legacy: ConfigTargetState = { defaultRevision: 2, previousDefault: 1, rollout: undefined };
    expect(rollbackConfig(legacy, undefined, t(7))).toMatchObject({ defaultRevision: 1, earlierDefaults: [] });
  });
});
