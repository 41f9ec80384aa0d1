import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyDeltaChain, indexFromCheckpoint, planFetch, TargetView } from '../../../libs/applier/index.ts';
import { isCheckpointVersion } from '../../../libs/bus/index.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

describe('planFetch', () => {
  it('fetches nothing when on target, deltas when close, a checkpoint when empty, far or behind', () => {
    expect(planFetch({ applied: 7, target: 7, maxDeltaChain: 5 })).toEqual({ kind: 'none' });
    expect(planFetch({ applied: 7, target: 12, maxDeltaChain: 5 })).toEqual({ kind: 'deltas', from: 8, to: 12 });
    expect(planFetch({ applied: 7, target: 13, maxDeltaChain: 5 })).toEqual({ kind: 'checkpoint', to: 13 });
    expect(planFetch({ applied: 0, target: 2, maxDeltaChain: 5 })).toEqual({ kind: 'checkpoint', to: 2 });
    expect(planFetch({ applied: 9, target: 4, maxDeltaChain: 5 })).toEqual({ kind: 'checkpoint', to: 4 });
  });
  it('takes checkpoints at version 1 and every K', () => {
    expect([1, 2, 3, 4, 6, 9].filter((v) => isCheckpointVersion(v, 3))).toEqual([1, 3, 6, 9]);
  });
});

describe('applyDeltaChain', () => {
  it('moves data forward and verifies every hash', () => {
    const m = new VersionMaker();
    const vs = [
      m.next({ upsertServices: [service(1), service(2)], upsertNodes: [node('n1')] }),
      m.next({ upsertServices: [service(1, 3, 1)] }),
      m.next({ removeServices: ['ns/svc-2'] }),
    ];
    const idx = new ClusterDataIndex();
    const r = applyDeltaChain(
      idx,
      0,
      vs.map((v) => v.delta),
    );
    expect(r).toEqual({ ok: true, version: 3, hash: m.index.hash() });
  });
  it('undoes every step when a later hash does not match (all or nothing)', () => {
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    const v2 = m.next({ upsertServices: [service(2)], removeServices: ['ns/svc-1'] });
    const v3 = m.next({ upsertServices: [service(3)] });
    const idx = ClusterDataIndex.from(v1.checkpoint().data);
    const before = idx.toClusterData();
    const bad = { ...v3.delta, hash: 'f'.repeat(64) };
    const r = applyDeltaChain(idx, 1, [v2.delta, bad]);
    expect(r).toMatchObject({ ok: false, version: 2 });
    expect(!r.ok && r.error).toMatch(/hash mismatch at version 3/);
    expect(idx.toClusterData()).toEqual(before);
    expect(idx.hash()).toBe(v1.delta.hash);
  });
  it('refuses a delta that does not follow (duplicate, gap or stale)', () => {
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    const v2 = m.next({ upsertServices: [service(2)] });
    const v3 = m.next({ upsertServices: [service(3)] });
    const idx = ClusterDataIndex.from(v1.checkpoint().data);
    expect(applyDeltaChain(idx, 1, [v1.delta])).toMatchObject({ ok: false });
    expect(applyDeltaChain(idx, 1, [v3.delta])).toMatchObject({ ok: false });
    expect(applyDeltaChain(idx, 1, [v2.delta, v2.delta])).toMatchObject({ ok: false });
    expect(idx.hash()).toBe(v1.delta.hash);
  });
  it('property: any prefix of a random history verifies; any tampered hash is refused without change', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.boolean(), fc.integer({ min: 0, max: 3 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.nat(),
        (ops, pick) => {
          const m = new VersionMaker();
          for (const [i, rm, g] of ops)
            m.next(
              rm && m.index.service(`ns/svc-${i}`)
                ? { removeServices: [`ns/svc-${i}`] }
                : { upsertServices: [service(i, 2, g)] },
            );
          const deltas = m.history.map((h) => h.delta);
          const ok = applyDeltaChain(new ClusterDataIndex(), 0, deltas);
          expect(ok).toEqual({ ok: true, version: deltas.length, hash: m.index.hash() });
          const k = pick % deltas.length;
          const idx = new ClusterDataIndex();
          const tampered = deltas.map((d, j) =>
            j === k ? { ...d, hash: d.hash.replace(/^./, d.hash[0] === '0' ? '1' : '0') } : d,
          );
          expect(applyDeltaChain(idx, 0, tampered).ok).toBe(false);
          expect(idx.hash()).toBe(new ClusterDataIndex().hash());
        },
      ),
      { numRuns: 60 },
    );
  });
  it('checks the version hash over carried entry hashes when a delta has them, instead of hashing the entries', () => {
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    // the planner's version 2 holds service 1 as gen 1; the delta's entry is gen 2 but carries
    // gen 1's hash: the hash is what the version hash is checked over (a node takes carried
    // hashes only when the planner's signature or the payload digest vouches for them)
    const v2 = m.next({ upsertServices: [service(1, 2, 1)] });
    const carried = { services: [m.index.serviceHash('ns/svc-1')!], nodes: [] };
    const delta = { ...v2.delta, delta: { ...v2.delta.delta, upsertServices: [service(1, 2, 2)] } };
    const withHashes = new ClusterDataIndex();
    applyDeltaChain(withHashes, 0, [v1.delta]);
    expect(applyDeltaChain(withHashes, 1, [{ ...delta, entryHashes: carried }])).toMatchObject({ ok: true });
    const without = new ClusterDataIndex();
    applyDeltaChain(without, 0, [v1.delta]);
    expect(applyDeltaChain(without, 1, [delta])).toMatchObject({ ok: false, error: /hash mismatch at version 2/ });
  });

  it('checks checkpoint hashes', () => {
    const m = new VersionMaker();
    const cp = m.next({ upsertServices: [service(1)] }).checkpoint();
    expect('index' in indexFromCheckpoint(cp)).toBe(true);
    expect(indexFromCheckpoint({ ...cp, data: { ...cp.data, services: [] } })).toMatchObject({
      error: expect.stringMatching(/hash mismatch/),
    });
  });
});

describe('TargetView', () => {
  const t = (version: number, configRevision: number, issued: number) => ({ version, configRevision, issued, sig: '' });
  it('prefers the node override, orders by the signed issued stamp, falls back to default when cleared', () => {
    const v = new TargetView('node.n1');
    expect(v.effective()).toBeUndefined();
    expect(v.observe('default', t(5, 1, 3))).toBe('newer');
    expect(v.observe('node.n1', t(4, 2, 4))).toBe('newer');
    expect(v.effective()).toEqual({ version: 4, configRevision: 2 });
    expect(v.observe('node.n1', t(9, 9, 4))).toBe('not newer'); // redelivery
    expect(v.observe('default', t(1, 1, 2))).toBe('not newer'); // stale get or replay
    expect(v.observe('node.n2', t(9, 9, 9))).toBe('not newer'); // not ours
    expect(v.observe('node.n1', { cleared: true, issued: 6, sig: '' })).toBe('newer');
    expect(v.effective()).toEqual({ version: 5, configRevision: 1 });
  });
});
