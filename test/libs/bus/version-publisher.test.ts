import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, VersionPublisher, VersionReader } from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { renderNodeState } from '../../../libs/planner/index.ts';
import { ackForHelper } from './publisher-helpers.ts';
import { startBusWorld, type BusWorld } from './bus-harness.ts';
import { node, service, VersionMaker } from './fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** How many of these JSON.stringify calls serialised delta `version` whole. */
function deltaEncodings(calls: readonly unknown[][], version: number): number {
  return calls.filter(([value]) => {
    const a = value as { form?: unknown; version?: unknown } | null;
    return typeof a === 'object' && a !== null && a.form === 'delta' && a.version === version;
  }).length;
}

describe('VersionPublisher', () => {
  it('serializes a published delta once (size check, signature and stored payload share the bytes)', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    const v2 = m.next({ upsertServices: [service(2)] });
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      await world.publisher.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data });
      expect(deltaEncodings(stringify.mock.calls, 2)).toBe(1);
    } finally {
      stringify.mockRestore();
    }
    const stored = await new VersionReader(world.planner, { verifier: world.verifier }).delta(2);
    expect(stored.ok && stored.value.hash).toBe(v2.delta.hash);
  });

  it('publishes an oversize delta as a marker after its checkpoint, never encoding the whole delta', async () => {
    // chunks of 32 KiB, a delta in at most 2 of them; version 2 upserts ~100 KiB of entries and is
    // not a checkpoint version (a delta within the parts: delta-parts.test.ts)
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024, deltaParts: 2 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    const v2 = m.next({ upsertServices: Array.from({ length: 100 }, (_, i) => service(i + 2, 5)) });
    const stringify = vi.spyOn(JSON, 'stringify');
    let results;
    try {
      results = await world.publisher.publishNext({
        header: v2.delta,
        delta: v2.delta.delta,
        data: () => v2.checkpoint().data,
      });
      expect(deltaEncodings(stringify.mock.calls, 2)).toBe(0);
    } finally {
      stringify.mockRestore();
    }
    expect(results.map((r) => [r.form, r.messages > 0])).toEqual([
      ['checkpoint', true],
      ['delta', true],
    ]);
    expect(results[0]?.messages).toBeGreaterThan(2);
    expect(results[1]?.bytes).toBe(0); // the marker has no payload
    const reader = new VersionReader(world.planner, { verifier: world.verifier });
    const stored = await reader.delta(2);
    expect(!stored.ok && stored.checkpointOnly).toMatchObject({ hash: v2.delta.hash });
    expect(world.publisher.lastCheckpointVersion()).toBe(2);
  });

  it("a new publisher's recovery and claim read the stream from its leader, never by direct get (a frozen replica takes those)", async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 2 });
    const m = new VersionMaker();
    for (const v of [1, 2, 3].map((i) => m.next({ upsertServices: [service(i)] })))
      await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const auth = { user: 'planner', password: 'planner-secret' };
    const witness = await connectBus({ servers: world.server.url, name: 'witness', auth });
    const nc = await connectBus({ servers: world.server.url, name: 'planner-2', auth });
    try {
      const api: string[] = [];
      const sub = witness.subscribe('$JS.API.>', { callback: (_e, msg) => void api.push(msg.subject) });
      await witness.flush();
      const p2 = await VersionPublisher.open({ nc, checkpointEvery: 2, signer: world.signer });
      await p2.claim(2, 'planner-2');
      expect(p2.lastPublishedVersion()).toBe(3); // it read version 3's delta back
      await witness.flush();
      sub.unsubscribe();
      expect(api.filter((s) => s.startsWith('$JS.API.DIRECT.GET.'))).toEqual([]);
      expect(api.filter((s) => s === '$JS.API.STREAM.MSG.GET.SB_VERSIONS').length).toBeGreaterThan(0);
    } finally {
      await nc.close();
      await witness.close();
    }
  });

  it('survives a restart without duplicate or skipped numbers, and refuses conflicting content', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 2 });
    const m = new VersionMaker();
    const vs = [1, 2, 3].map((i) => m.next({ upsertServices: [service(i)] }));
    for (const v of vs)
      await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    // a new planner process: a fresh connection and publisher learn where the stream is
    const nc = await connectBus({
      servers: world.server.url,
      name: 'planner-2',
      auth: { user: 'planner', password: 'planner-secret' },
    });
    try {
      const p2 = await VersionPublisher.open({ nc, checkpointEvery: 2, signer: world.signer });
      expect(p2.lastPublishedVersion()).toBe(3);
      expect(p2.lastCheckpointVersion()).toBe(2);
      const v4 = m.next({ upsertServices: [service(4)] });
      const v5 = m.next({ upsertServices: [service(5)] });
      await expect(p2.publishVersion(v5.delta)).rejects.toThrow(/publish 4 first/);
      expect(await p2.publishVersion(vs[2]!.delta)).toMatchObject({ duplicate: true }); // republished from the log
      await expect(p2.publishVersion({ ...vs[2]!.delta, hash: 'a'.repeat(64) })).rejects.toThrow(
        /already published with hash/,
      );
      // the old publisher (a planner that did not know it was replaced) cannot store a second 4
      await p2.publishNext({ header: v4.delta, delta: v4.delta.delta, data: () => v4.checkpoint().data });
      const r = await world.publisher.publishVersion(v4.delta);
      expect(r.duplicate).toBe(true);
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('SB_VERSIONS', { subjects_filter: 'sb.v.delta.>' });
      expect(info.state.subjects).toEqual({
        'sb.v.delta.1': 1,
        'sb.v.delta.2': 1,
        'sb.v.delta.3': 1,
        'sb.v.delta.4': 1,
      });
      const cps = await jsm.streams.info('SB_VERSIONS', { subjects_filter: 'sb.v.checkpoint.>' });
      expect(Object.keys(cps.state.subjects ?? {}).sort()).toEqual([
        'sb.v.checkpoint.1.0',
        'sb.v.checkpoint.2.0',
        'sb.v.checkpoint.4.0',
      ]);
      const d4 = await new VersionReader(nc).delta(4);
      expect(d4.ok && d4.baseCheckpoint).toBe(4);
    } finally {
      await nc.close();
    }
  });

  it('a planner that died between a checkpoint and its delta redoes that version', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 2 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    const v2 = m.next({ upsertServices: [service(2)] });
    await world.publisher.publishVersion(v2.checkpoint()); // ...and the process dies here
    const p2 = await VersionPublisher.open({ nc: world.planner, checkpointEvery: 2 });
    expect(p2.lastPublishedVersion()).toBe(1);
    await p2.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data });
    expect(p2.lastPublishedVersion()).toBe(2);
    const d2 = await new VersionReader(world.planner).delta(2);
    expect(d2.ok && d2.baseCheckpoint).toBe(2);
  });

  it('a base version above an empty stream: checkpoint + marker, later deltas on top; a node loads it without its parent; a base cut short is redone (review2 R8)', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 50 });
    const m = new VersionMaker();
    const [, , v3] = [1, 2, 3].map((i) => m.next({ upsertServices: [service(i)], upsertNodes: [node('n1')] }));
    // versions 1-2 exist no more (compacted from the planner's log): only their successors' base
    await expect(
      world.publisher.publishNext({ header: v3!.delta, delta: v3!.delta.delta, data: () => v3!.checkpoint().data }),
    ).rejects.toThrow(/publish 1 first/);
    await world.publisher.publishVersion(v3!.checkpoint(), '', undefined, undefined, true); // ...and the process dies here
    const p2 = await VersionPublisher.open({ nc: world.planner, checkpointEvery: 50, signer: world.signer });
    expect(p2.lastPublishedVersion()).toBe(0); // chunks of 3 with no delta 2 before them: nothing published
    const base = await p2.publishBase({ header: v3!.delta, data: () => v3!.checkpoint().data });
    expect(base.map((r) => [r.form, r.bytes === 0])).toEqual([
      ['checkpoint', false],
      ['delta', true], // the marker
    ]);
    expect(p2.lastPublishedVersion()).toBe(3);
    expect(p2.lastCheckpointVersion()).toBe(3);
    const v4 = m.next({ upsertServices: [service(4)] });
    await p2.publishNext({ header: v4.delta, delta: v4.delta.delta, data: () => v4.checkpoint().data });
    const reader = new VersionReader(world.planner, { verifier: world.verifier });
    const d3 = await reader.delta(3);
    expect(!d3.ok && d3.checkpointOnly).toMatchObject({ hash: v3!.delta.hash });
    const d4 = await reader.delta(4);
    expect(d4.ok && d4.baseCheckpoint).toBe(3);
    expect((await reader.delta(1)).ok).toBe(false);
    // a restarted publisher finds the stream at 4, and the base again is a duplicate
    const p3 = await VersionPublisher.open({ nc: world.planner, checkpointEvery: 50, signer: world.signer });
    expect([p3.lastPublishedVersion(), p3.lastCheckpointVersion()]).toEqual([4, 3]);
    expect((await p3.publishBase({ header: v3!.delta, data: () => v3!.checkpoint().data }))[0]).toMatchObject({
      duplicate: true,
    });
    // a node that never ran anything loads checkpoint 3 and delta 4
    await world.targets.setDefaultTarget({ version: 4, configRevision: 0 });
    const a = await world.startApplier('n1');
    const ack4 = await world.received.waitFor(ackForHelper('n1', 4), 'ack 4');
    expect(ack4.kind === 'ack' && ack4.v.dataHash).toBe(m.index.hash());
    expect(a.dataplane.last).toEqual(renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG));
  });

  it('keeps the newest checkpoints and the deltas after them, purging the rest; a node still loads the newest (review4 G2)', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 50 });
    const p = await VersionPublisher.open({
      nc: world.planner,
      checkpointEvery: 3,
      keepCheckpoints: 2,
      signer: world.signer,
    });
    const m = new VersionMaker();
    for (let i = 1; i <= 10; i++) {
      const v = m.next({ upsertServices: [service(i)], upsertNodes: i === 1 ? [node('n1')] : [] });
      await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    }
    // checkpoints at 1, 3, 6, 9: the stream keeps 6 and 9 and what follows 6, nothing before
    const info = await (await jetstreamManager(world.planner)).streams.info('SB_VERSIONS');
    expect(info.state.first_seq).toBe(p.purgedBelowSeq());
    expect(info.state.first_seq).toBeGreaterThan(1);
    const reader = new VersionReader(world.planner, { verifier: world.verifier });
    expect((await reader.delta(5)).ok).toBe(false);
    expect((await reader.delta(6)).ok).toBe(true);
    expect((await reader.checkpoint(6)).ok).toBe(true);
    const d10 = await reader.delta(10);
    expect(d10.ok && d10.baseCheckpoint).toBe(9);
    // a node that never ran anything loads checkpoint 9 and delta 10
    await world.targets.setDefaultTarget({ version: 10, configRevision: 0 });
    const a = await world.startApplier('n1');
    const ack10 = await world.received.waitFor(ackForHelper('n1', 10), 'ack 10');
    expect(ack10.kind === 'ack' && ack10.v.dataHash).toBe(m.index.hash());
    expect(a.dataplane.last).toEqual(renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG));
  });

  it('takes off limits someone gave the stream (max_bytes with discard old dropped every version as it was stored; probe17 N1)', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 3 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    // an operator bounds the stream (`nats stream edit SB_VERSIONS --max-bytes ... --discard old`)
    const jsm = await jetstreamManager(world.planner);
    const before = await jsm.streams.info('SB_VERSIONS');
    await jsm.streams.update('SB_VERSIONS', {
      ...before.config,
      max_bytes: before.state.bytes + 2000,
      max_msgs_per_subject: 5,
      discard: DiscardPolicy.Old,
    });
    // the next planner to open (or claim) the stream
    const said: string[] = [];
    const p = await VersionPublisher.open({
      nc: world.planner,
      checkpointEvery: 3,
      signer: world.signer,
      onLimitsReset: (l) => said.push(l),
    });
    expect(said).toEqual([
      expect.stringMatching(
        /^stream SB_VERSIONS had limits of its own \(max_bytes \d+, max_msgs_per_subject 5, discard old\): .*taken off/,
      ),
    ]);
    for (let i = 2; i <= 8; i++) {
      const v = m.next({ upsertServices: Array.from({ length: 20 }, (_, j) => service(i * 100 + j, 4)) });
      await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    }
    // a node that starts now loads the newest version: checkpoint 6 and the deltas after it
    const reader = new VersionReader(world.planner, { verifier: world.verifier });
    const d8 = await reader.delta(8);
    expect(d8.ok && d8.baseCheckpoint).toBe(6);
    expect((await reader.checkpoint(6)).ok).toBe(true);
    expect((await jsm.streams.info('SB_VERSIONS')).config).toMatchObject({
      max_bytes: -1,
      max_msgs_per_subject: -1,
    });
    // nothing to take off: said once only
    await VersionPublisher.open({ nc: world.planner, signer: world.signer, onLimitsReset: (l) => said.push(l) });
    expect(said).toHaveLength(1);
  });

  it('chunks checkpoints larger than max_payload, and a node reassembles and verifies them', async () => {
    // a delta in at most 2 messages: the mass change below forces a checkpoint
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 10, maxPayload: 64 * 1024, deltaParts: 2 });
    const m = new VersionMaker();
    const v1 = m.next({
      upsertServices: Array.from({ length: 300 }, (_, i) => service(i, 10)),
      upsertNodes: [node('n1')],
    });
    const size = JSON.stringify(v1.checkpoint()).length;
    expect(size).toBeGreaterThan(3 * 64 * 1024);
    const res = await world.publisher.publishNext({
      header: v1.delta,
      delta: v1.delta.delta,
      data: () => v1.checkpoint().data,
    });
    expect(res[0]).toMatchObject({ form: 'checkpoint' });
    expect(res[0]!.messages).toBeGreaterThan(3);
    const v2 = m.next({ upsertServices: [service(1, 10, 9)] });
    await world.publisher.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackForHelper('n1', 2), 'ack 2');
    expect(a.dataplane.last).toEqual(renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG));
    // a mass change whose delta alone exceeds max_payload: the publisher forces a checkpoint
    const v3 = m.next({ upsertServices: Array.from({ length: 300 }, (_, i) => service(i, 10, 3)) });
    const r3 = await world.publisher.publishNext({
      header: v3.delta,
      delta: v3.delta.delta,
      data: () => v3.checkpoint().data,
    });
    expect(r3.map((r) => r.form)).toEqual(['checkpoint', 'delta']);
    expect(r3[1]!.bytes).toBe(0);
    await world.targets.setDefaultTarget({ version: 3, configRevision: 0 });
    const ack3 = await world.received.waitFor(ackForHelper('n1', 3), 'ack 3');
    expect(ack3.kind === 'ack' && ack3.v.dataHash).toBe(m.index.hash());
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 3, 'session ack 3');
    expect(ev.type === 'ack' && ev.path).toBe('checkpoint');
  });
});
