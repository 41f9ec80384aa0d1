import { describe, expect, it } from 'vitest';
import { contentHash, DEFAULT_PROXY_CONFIG, diffServiceEntry, type ServiceEntry } from '../../../libs/model/index.ts';
import { DataSync } from '../../../libs/applier/index.ts';
import { decodePatchedDelta, patchNotice, type VersionReader } from '../../../libs/bus/index.ts';
import { NodeStateRenderer, nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { node, service, sortedLargeService, VersionMaker } from '../bus/fixtures.ts';

/** Serves a VersionMaker's history as the reader would (every version also has a checkpoint). */
function reader(
  m: VersionMaker,
  tamper = new Set<number>(),
  noCheckpoint = new Set<number>(),
): Pick<VersionReader, 'delta' | 'checkpoint'> {
  return {
    delta: async (v) => {
      const h = m.history[v - 1];
      if (!h) return { ok: false, missing: true, error: `no delta ${v}` };
      const value = tamper.has(v) ? { ...h.delta, hash: 'f'.repeat(64) } : h.delta;
      return { ok: true, value, bytes: 1, baseCheckpoint: v };
    },
    checkpoint: async (v) => {
      const h = m.history[v - 1];
      return h && !noCheckpoint.has(v)
        ? { ok: true, value: h.checkpoint(), bytes: 1, baseCheckpoint: v }
        : { ok: false, missing: true, error: `no checkpoint ${v}` };
    },
  };
}

describe('DataSync.takeChanges: the net change for incremental rendering', () => {
  it('is "everything" after a checkpoint load, then the merged delta of the versions moved by deltas', async () => {
    const m = new VersionMaker();
    m.next({ upsertServices: [service(1), service(2), service(3)], upsertNodes: [node('n1'), node('n2')] });
    const sync = new DataSync(reader(m), 10);
    expect((await sync.advanceTo(1)).ok).toBe(true);
    expect(sync.takeChanges()).toBeUndefined();
    const r = new NodeStateRenderer('n1', DEFAULT_PROXY_CONFIG);
    r.reset(sync.data);

    m.next({ upsertServices: [service(1, 3, 1)] });
    m.next({ upsertServices: [service(1, 4, 2), service(4)], removeServices: ['ns/svc-2'] });
    m.next({ upsertNodes: [{ ...node('n2'), zone: 'z9' }] });
    const res = await sync.advanceTo(4);
    expect(res.ok && res.path).toBe('deltas');
    const d = sync.takeChanges()!;
    expect(d.upsertServices.map((s) => s.key).sort()).toEqual(['ns/svc-1', 'ns/svc-4']);
    expect(d.upsertServices.find((s) => s.key === 'ns/svc-1')).toEqual(service(1, 4, 2)); // read from data now, not version 2
    expect(d.removeServices).toEqual(['ns/svc-2']);
    expect(d.upsertNodes.map((n) => n.name)).toEqual(['n2']);
    r.update(sync.data, d);
    const full = renderNodeState(sync.data, 'n1', DEFAULT_PROXY_CONFIG);
    expect(r.state()).toEqual(full);
    expect(r.hash()).toBe(nodeStateHash(full));
    expect(sync.takeChanges()).toEqual({ upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] });
  });

  it('records nothing for a chain that fails verification, and "everything" after a checkpoint jump', async () => {
    const m = new VersionMaker();
    m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    // delta 3 fails verification, and the checkpoint it names cannot be read (the retry from it fails)
    const sync = new DataSync(reader(m, new Set([3]), new Set([3])), 2);
    await sync.advanceTo(1);
    sync.takeChanges();
    m.next({ upsertServices: [service(2)] });
    m.next({ upsertServices: [service(3)] });
    const bad = await sync.advanceTo(3);
    expect(bad.ok).toBe(false);
    expect(sync.version).toBe(1);
    expect(sync.takeChanges()).toEqual({ upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] });
    for (let i = 0; i < 4; i++) m.next({ upsertServices: [service(10 + i)] });
    const jump = await sync.advanceTo(7);
    expect(jump.ok && jump.path).toBe('checkpoint');
    expect(sync.takeChanges()).toBeUndefined();
  });
});

describe('DataSync with deltas offered by notices', () => {
  it('applies offered deltas without a read, reads only those not offered, and checks offered ones like fetched ones', async () => {
    const m = new VersionMaker();
    m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const reads: number[] = [];
    const r = reader(m);
    const sync = new DataSync({ ...r, delta: (v) => (reads.push(v), r.delta(v)) }, 10);
    await sync.advanceTo(1);
    reads.length = 0;
    for (let i = 2; i <= 4; i++) m.next({ upsertServices: [service(i)] });
    for (const v of [2, 3, 4]) sync.offer(m.history[v - 1]!.delta);
    const all = await sync.advanceTo(4);
    expect(all).toEqual({
      ok: true,
      version: 4,
      hash: m.history[3]!.delta.hash,
      bytes: 0,
      path: 'deltas',
      patched: 0,
    });
    expect(reads).toEqual([]);

    for (let i = 5; i <= 7; i++) m.next({ upsertServices: [service(i)] });
    sync.offer(m.history[4]!.delta);
    sync.offer(m.history[6]!.delta);
    expect((await sync.advanceTo(7)).ok).toBe(true);
    expect(reads).toEqual([6]);

    // an offered delta whose content does not match its hash is refused, and dropped: the node
    // recovers once from the checkpoint path (fetched anew), not blocked until maxDeltaChain behind
    m.next({ upsertServices: [service(8)] });
    sync.offer({ ...m.history[7]!.delta, delta: { ...m.history[7]!.delta.delta, upsertServices: [service(9)] } });
    reads.length = 0;
    expect(await sync.advanceTo(8)).toMatchObject({
      ok: true,
      version: 8,
      hash: m.history[7]!.delta.hash,
      path: 'checkpoint',
    });
    expect(reads).toEqual([8]);
    expect(sync.data.service('ns/svc-9')).toBeUndefined();

    // with no good copy anywhere, the delta path's error stands (permanent), and nothing moves
    const tampered = new DataSync(reader(m, new Set([9]), new Set([9])), 10);
    await tampered.advanceTo(8);
    m.next({ upsertServices: [service(10)] });
    const bad = await tampered.advanceTo(9);
    expect(bad.ok || bad.error).toMatch(/^hash mismatch at version 9: .*; then from the checkpoint: no checkpoint 9$/);
    expect(tampered.version).toBe(8);
  });
});

describe('DataSync with versions offered as patches', () => {
  /** A 300-endpoint service in entry order, its endpoints shifted by `shift`. */
  const big = (shift: number) => sortedLargeService('ns/big', 300, shift);
  /** Version `v` of `m` as a notice's patch would bring it (ns/big patched against v - 1). */
  const asPatch = (m: VersionMaker, v: number, base: ServiceEntry) => {
    const next = m.history[v - 1]!.delta;
    const entry = next.delta.upsertServices.find((e) => e.key === 'ns/big')!;
    const p = diffServiceEntry(base, entry, contentHash(base), contentHash(entry))!;
    const d = decodePatchedDelta(patchNotice(next, [p])!.payload);
    if (!d.ok) throw new Error(d.error);
    return d.value;
  };

  it('rebuilds a run of patched versions from the data held, each on the one before, without a read', async () => {
    const m = new VersionMaker();
    m.next({ upsertServices: [service(1), big(0)], upsertNodes: [node('n1')] });
    const reads: number[] = [];
    const r = reader(m);
    const refused: string[] = [];
    const sync = new DataSync({ ...r, delta: (v) => (reads.push(v), r.delta(v)) }, 10, undefined, (v, why) =>
      refused.push(`${v}: ${why}`),
    );
    await sync.advanceTo(1);
    reads.length = 0;
    m.next({ upsertServices: [big(1), service(2)] });
    m.next({ upsertServices: [big(2)], removeServices: ['ns/svc-1'] });
    sync.offerPatched(asPatch(m, 2, big(0)), false);
    sync.offerPatched(asPatch(m, 3, big(1)), true);
    // two versions, each rebuilding ns/big from its patch
    expect(await sync.advanceTo(3)).toEqual({
      ok: true,
      version: 3,
      hash: m.index.hash(),
      bytes: 0,
      path: 'deltas',
      patched: 2,
    });
    expect(reads).toEqual([]);
    expect(refused).toEqual([]);
    expect(sync.data.service('ns/big')).toEqual(big(2));

    // a patch made against other content than the node holds: refused and said, the version read
    m.next({ upsertServices: [big(3)] });
    sync.offerPatched(asPatch(m, 4, big(0)), true);
    expect(await sync.advanceTo(4)).toMatchObject({
      ok: true,
      version: 4,
      hash: m.index.hash(),
      path: 'deltas',
      patched: 0,
    });
    expect(reads).toEqual([4]);
    expect(refused).toEqual([expect.stringMatching(/^4: patch of ns\/big: this node holds \w+, not \w+$/)]);

    // a patch whose entry hash lies: unvouched, the rebuilt entry is hashed and refused (the
    // version read); vouched, its hash is taken, and the version hash check refuses the version
    // (the node goes to the checkpoint, fetched anew): it never holds content the stream does not
    for (const [version, vouched] of [
      [5, false],
      [6, true],
    ] as const) {
      m.next({ upsertServices: [big(version)] });
      const lying = asPatch(m, version, sync.data.service('ns/big')!);
      const p = { ...lying.servicePatches[0]!, hash: contentHash(big(99)) };
      sync.offerPatched({ ...lying, servicePatches: [p] }, vouched);
      reads.length = 0;
      refused.length = 0;
      const r = await sync.advanceTo(version);
      expect(r).toMatchObject({
        ok: true,
        version,
        hash: m.index.hash(),
        path: vouched ? 'checkpoint' : 'deltas',
        patched: 0,
      });
      expect(reads).toEqual([version]);
      expect(refused).toEqual(vouched ? [] : [expect.stringMatching(/^5: patch of ns\/big: made \w+, not \w+$/)]);
      expect(sync.data.service('ns/big')).toEqual(big(version));
    }
  });
});
