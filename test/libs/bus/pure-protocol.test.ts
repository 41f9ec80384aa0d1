import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  applyDeltaChain, computeNodeStatus, decodeCheckpoint, decodeDelta, encodeArtifact, indexFromCheckpoint,
  isCheckpointVersion, nodeToken, parseNodeTarget, planFetch, TargetView,
} from '../../../libs/bus/index.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import { node, service, VersionMaker } from './fixtures.ts';

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

describe('artifact codec', () => {
  it('round-trips deltas and chunked checkpoints', () => {
    const m = new VersionMaker();
    const v = m.next({ upsertServices: Array.from({ length: 40 }, (_, i) => service(i, 5)), upsertNodes: [node('n1')] });
    const cp = v.checkpoint();
    const msgs = encodeArtifact(cp, { chunkBytes: 2048, baseCheckpoint: 0 });
    expect(msgs.length).toBeGreaterThan(3);
    expect(msgs.every((x) => x.payload.length <= 2048)).toBe(true);
    expect(msgs.map((x) => x.subject)).toEqual(msgs.map((_, i) => `sb.v.checkpoint.1.${i}`));
    const back = decodeCheckpoint(msgs.map((x) => x.payload));
    expect(back.ok && back.value).toEqual(cp);
    const [dm] = encodeArtifact(v.delta, { chunkBytes: 1e6, baseCheckpoint: 1 });
    expect(dm!.subject).toBe('sb.v.delta.1');
    expect(dm!.headers['Sb-Checkpoint']).toBe('1');
    const d = decodeDelta(dm!.payload);
    expect(d.ok && d.value).toEqual(v.delta);
    // a delta over the chunk size becomes a marker pointing at its own checkpoint...
    const [stub] = encodeArtifact(v.delta, { chunkBytes: 2048, baseCheckpoint: 1 });
    expect(stub!.payload.length).toBe(0);
    expect(stub!.headers['Sb-Checkpoint-Only']).toBe('1');
    // ...which must exist already
    expect(() => encodeArtifact(v.delta, { chunkBytes: 2048, baseCheckpoint: 0 })).toThrow(/publish checkpoint 1 first/);
  });
  it('reports corrupt payloads as errors, never throws', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const r = decodeDelta(bytes);
      expect(r.ok).toBe(false);
    }));
    expect(decodeDelta(new TextEncoder().encode('{"version":1}'))).toMatchObject({ ok: false });
    const m = new VersionMaker();
    const [dm] = encodeArtifact(m.next({ upsertServices: [service(1)] }).delta, { chunkBytes: 1e6, baseCheckpoint: 0 });
    expect(decodeCheckpoint([dm!.payload])).toMatchObject({ ok: false, error: 'expected a checkpoint, got delta' });
  });
});

describe('applyDeltaChain', () => {
  it('moves data forward and verifies every hash', () => {
    const m = new VersionMaker();
    const vs = [m.next({ upsertServices: [service(1), service(2)], upsertNodes: [node('n1')] }), m.next({ upsertServices: [service(1, 3, 1)] }), m.next({ removeServices: ['ns/svc-2'] })];
    const idx = new ClusterDataIndex();
    const r = applyDeltaChain(idx, 0, vs.map((v) => v.delta));
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
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 8 }), fc.boolean(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 12 }), fc.nat(), (ops, pick) => {
      const m = new VersionMaker();
      for (const [i, rm, g] of ops) m.next(rm && m.index.service(`ns/svc-${i}`) ? { removeServices: [`ns/svc-${i}`] } : { upsertServices: [service(i, 2, g)] });
      const deltas = m.history.map((h) => h.delta);
      const ok = applyDeltaChain(new ClusterDataIndex(), 0, deltas);
      expect(ok).toEqual({ ok: true, version: deltas.length, hash: m.index.hash() });
      const k = pick % deltas.length;
      const idx = new ClusterDataIndex();
      const tampered = deltas.map((d, j) => (j === k ? { ...d, hash: d.hash.replace(/^./, d.hash[0] === '0' ? '1' : '0') } : d));
      expect(applyDeltaChain(idx, 0, tampered).ok).toBe(false);
      expect(idx.hash()).toBe(new ClusterDataIndex().hash());
    }), { numRuns: 60 });
  });
  it('checks checkpoint hashes', () => {
    const m = new VersionMaker();
    const cp = m.next({ upsertServices: [service(1)] }).checkpoint();
    expect('index' in indexFromCheckpoint(cp)).toBe(true);
    expect(indexFromCheckpoint({ ...cp, data: { ...cp.data, services: [] } })).toMatchObject({ error: expect.stringMatching(/hash mismatch/) });
  });
});

describe('TargetView', () => {
  it('prefers the node override, ignores older revisions, falls back to default on delete', () => {
    const v = new TargetView('node.n1');
    expect(v.effective()).toBeUndefined();
    expect(v.observe('default', 3, { version: 5, configRevision: 1 })).toBe(true);
    expect(v.observe('node.n1', 4, { version: 4, configRevision: 2 })).toBe(true);
    expect(v.effective()).toEqual({ version: 4, configRevision: 2 });
    expect(v.observe('node.n1', 4, { version: 9, configRevision: 9 })).toBe(false); // redelivery
    expect(v.observe('default', 2, { version: 1, configRevision: 1 })).toBe(false); // stale get
    expect(v.observe('node.n2', 9, { version: 9, configRevision: 9 })).toBe(false); // not ours
    expect(v.observe('node.n1', 6, undefined)).toBe(true);
    expect(v.effective()).toEqual({ version: 5, configRevision: 1 });
  });
  it('parses only well-formed targets', () => {
    const e = (s: string) => new TextEncoder().encode(s);
    expect(parseNodeTarget(e('{"version":3,"configRevision":0}'))).toEqual({ version: 3, configRevision: 0 });
    for (const bad of ['', 'null', '{"version":0,"configRevision":0}', '{"version":"3","configRevision":1}', '[1,2]', '\xff']) {
      expect(parseNodeTarget(e(bad))).toBeUndefined();
    }
  });
  it('maps node names to single subject tokens, one-to-one', () => {
    expect(nodeToken('ip-10-0-0-1.ec2.internal')).toBe('ip-10-0-0-1_ec2_internal');
    for (const bad of ['', 'a b', 'a*', 'a>', 'a_b', '-a', 'a.']) expect(() => nodeToken(bad)).toThrow();
  });
});

describe('computeNodeStatus', () => {
  const t = { version: 5, configRevision: 1 };
  const ack = (version: number, configRevision = 1) => ({
    type: 'ACK' as const, node: 'n1', version, configRevision, dataHash: 'd', nodeStateHash: 'h', mode: 'dry-run',
    kernelWrites: 0, timings: { fetchMs: 0, renderMs: 0, applyMs: 0 }, at: '',
  });
  const nack = { type: 'NACK' as const, node: 'n1', version: 5, configRevision: 1, error: 'boom', lastGoodVersion: 4, lastGoodConfigRevision: 1, at: '' };
  const hb = (v: number, healthy = true) => ({ node: 'n1', appliedVersion: v, appliedConfigRevision: 1, mode: 'ipvs', healthy, detail: healthy ? '' : 'bad', at: '' });
  const base = { target: t, targetSetAt: 1000, lastAck: undefined, lastAckAt: undefined, lastHeartbeat: undefined, lastHeartbeatAt: undefined, now: 2000 };
  const th = { silenceMs: 10_000, applyTimeoutMs: 5_000 };
  it('derives each status word', () => {
    expect(computeNodeStatus({ ...base, thresholds: th }).status).toBe('UNKNOWN');
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(5), lastAckAt: 1500 })).toMatchObject({ status: 'SYNCED', appliedVersion: 5 });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(4), lastAckAt: 1500 })).toMatchObject({ status: 'APPLYING', appliedVersion: 4 });
    expect(computeNodeStatus({ ...base, thresholds: th, now: 7000, lastHeartbeat: hb(4), lastHeartbeatAt: 6900 })).toMatchObject({ status: 'STALE' });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: nack, lastAckAt: 1500 })).toMatchObject({ status: 'ERROR', appliedVersion: 4 });
    expect(computeNodeStatus({ ...base, thresholds: th, now: 20_000, lastAck: ack(5), lastAckAt: 1500 })).toMatchObject({ status: 'UNKNOWN' });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(5), lastAckAt: 1500, lastHeartbeat: hb(5, false), lastHeartbeatAt: 1600 })).toMatchObject({ status: 'ERROR' });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(5, 2), lastAckAt: 1500 })).toMatchObject({ status: 'APPLYING' });
  });
  it('a NACK for an older target does not make a node on the new target ERROR', () => {
    expect(computeNodeStatus({ ...base, thresholds: th, target: { version: 6, configRevision: 1 }, lastAck: nack, lastAckAt: 1500 }).status).toBe('APPLYING');
  });
  it('a heartbeat newer than the ack reports what runs now', () => {
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(4), lastAckAt: 1200, lastHeartbeat: hb(5), lastHeartbeatAt: 1800 }).status).toBe('SYNCED');
  });
});
