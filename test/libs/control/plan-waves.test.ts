import { describe, expect, it } from 'vitest';
import { formatWaves, parseWaves } from '../../../libs/control/parse-waves.ts';
import {
  canaryBlocker,
  NO_NODE_OBJECT_CANARY,
  notCanaryNodes,
  type NodeStatusRow,
} from '../../../libs/control/node-status.ts';
import { planWaves } from '../../../libs/control/plan-waves.ts';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => `node-${String(i).padStart(2, '0')}`);

describe('parseWaves', () => {
  it('reads counts and percentages', () => {
    expect(parseWaves('1, 10%,50%,100%')).toEqual([
      { kind: 'count', n: 1 },
      { kind: 'percent', p: 10 },
      { kind: 'percent', p: 50 },
      { kind: 'percent', p: 100 },
    ]);
    expect(formatWaves(parseWaves('1,10%,100%'))).toBe('1,10%,100%');
  });
  it.each(['', '0', '-1', '150%', 'ten', '0%'])('rejects %j', (s) => {
    expect(() => parseWaves(s)).toThrow(/waves/);
  });
});

describe('planWaves', () => {
  it('makes cumulative, sorted, deduplicated waves ending with the whole fleet', () => {
    const waves = planWaves(fleet(20).reverse(), parseWaves('1,10%,50%,100%'));
    expect(waves.map((w) => w.length)).toEqual([1, 2, 10, 20]);
    expect(waves[0]).toEqual(['node-00']);
    for (let i = 1; i < waves.length; i++) expect(waves[i]!.slice(0, waves[i - 1]!.length)).toEqual(waves[i - 1]);
  });
  it('drops waves that add nobody and covers the fleet even when specs stop short', () => {
    expect(planWaves(fleet(3), parseWaves('1,10%,20%,50%')).map((w) => w.length)).toEqual([1, 2, 3]);
    expect(planWaves(fleet(3), parseWaves('5'))).toEqual([fleet(3)]);
  });
  it('gives no wave for an empty fleet', () => {
    expect(planWaves([], parseWaves('1,100%'))).toEqual([]);
  });
});

// W1: waves in name order alone made a Node without an applier (never heard from) the canary; the
// rollout then waited on it for its whole wave timeout and halted.
describe('planWaves picks the canary among nodes whose applier is live and in sync', () => {
  const silent = new Map([['node-00', 'UNKNOWN (never heard from)']]);
  it('passes over a node that may not be a canary (fails on the old code: node-00 was the canary)', () => {
    const waves = planWaves(fleet(4), parseWaves('1,50%,100%'), silent);
    expect(waves).toEqual([['node-01'], ['node-01', 'node-02'], ['node-01', 'node-02', 'node-03', 'node-00']]);
  });
  it('is deterministic: eligible nodes in name order first, whatever the input order', () => {
    const notCanary = new Map([
      ['node-01', 'STALE (x)'],
      ['node-03', 'ERROR (y)'],
    ]);
    const a = planWaves(fleet(6), parseWaves('2,100%'), notCanary);
    expect(planWaves(fleet(6).reverse(), parseWaves('2,100%'), notCanary)).toEqual(a);
    expect(a[0]).toEqual(['node-00', 'node-02']);
    expect(a[1]).toEqual(['node-00', 'node-02', 'node-04', 'node-05', 'node-01', 'node-03']);
  });
  it('refuses with one line when no node may be the canary', () => {
    const all = new Map(fleet(5).map((n) => [n, 'UNKNOWN (never heard from)']));
    expect(() => planWaves(fleet(5), parseWaves('1,100%'), all)).toThrow(
      /^no canary: the first wave takes 1 node\(s\) whose applier is live and in sync, and none of the 5 fleet nodes is: node-00 UNKNOWN \(never heard from\); .*; and 2 more$/,
    );
  });
  it('refuses a first wave larger than the eligible nodes, naming them', () => {
    const notCanary = new Map(
      fleet(3)
        .slice(1)
        .map((n) => [n, 'STALE (s)']),
    );
    expect(() => planWaves(fleet(3), parseWaves('2,100%'), notCanary)).toThrow(
      /only 1 \(node-00\) of the 3 fleet nodes/,
    );
  });
  it('keeps the refusal on one line whatever a node wrote in its NACK', () => {
    const notCanary = new Map(fleet(2).map((n) => [n, `ERROR (NACK: line one\nline two ${'x'.repeat(300)})`]));
    let message = '';
    try {
      planWaves(fleet(2), parseWaves('1,100%'), notCanary);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^no canary: .*node-00 ERROR \(NACK: line one line two x+…; node-01 ERROR/);
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(500);
  });
  it('a single wave (the whole fleet at once) has no canary to choose', () => {
    const all = new Map(fleet(2).map((n) => [n, 'UNKNOWN (never heard from)']));
    expect(planWaves(fleet(2), parseWaves('100%'), all)).toEqual([['node-00', 'node-01']]);
  });
});

describe('canaryBlocker (libs/control/node-status.ts)', () => {
  const row = (status: NodeStatusRow['status'], applied: number | null, target = 1) => ({
    node: 'n',
    status,
    reason: 'why',
    appliedConfigRevision: applied,
    targetConfigRevision: target,
  });
  it('SYNCED, and APPLYING on its target config revision (a data version in flight), may be a canary', () => {
    expect(canaryBlocker(row('SYNCED', 1))).toBeUndefined();
    expect(canaryBlocker(row('APPLYING', 1))).toBeUndefined();
  });
  it('UNKNOWN, STALE, ERROR, and APPLYING another config revision or nothing may not', () => {
    for (const s of ['UNKNOWN', 'STALE', 'ERROR'] as const) expect(canaryBlocker(row(s, 1))).toBe(`${s} (why)`);
    expect(canaryBlocker(row('APPLYING', 2))).toBe('APPLYING (why)');
    expect(canaryBlocker(row('APPLYING', null))).toBe('APPLYING (why)');
    expect([...notCanaryNodes([row('SYNCED', 1), { ...row('UNKNOWN', null), node: 'm' }])]).toEqual([
      ['m', 'UNKNOWN (why)'],
    ]);
  });
  it('a SYNCED node the cluster has no Node object of may not (probe20 P20-4: a typo in --node came first by name)', () => {
    const rows = [{ ...row('SYNCED', 1), node: 'a-typo' }, row('SYNCED', 1)];
    expect([...notCanaryNodes(rows, (n) => n !== 'a-typo')]).toEqual([['a-typo', NO_NODE_OBJECT_CANARY]]);
    expect(
      planWaves(
        ['a-typo', 'n'],
        parseWaves('1,100%'),
        notCanaryNodes(rows, (n) => n !== 'a-typo'),
      )[0],
    ).toEqual(['n']);
  });
});
