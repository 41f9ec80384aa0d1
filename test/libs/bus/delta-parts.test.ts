// A delta too large for one message but within a few (a change to a service of thousands of
// endpoints) goes out in parts, not as a checkpoint of the whole cluster: real nats-server with a
// 64 KiB max_payload (32 KiB messages), a signed publisher and a real applier session.
import { jetstreamManager, jetstream } from '@nats-io/jetstream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { artifactBytes, deltaBytesLimit } from '../../../libs/bus/artifact-codec.ts';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import {
  connectBus,
  deltaPartSubject,
  H,
  parseVersionSubject,
  StaleLeaderError,
  VersionPublisher,
  VersionReader,
} from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { renderNodeState } from '../../../libs/planner/index.ts';
import { PLANNER, startBusWorld, type BusWorld } from './bus-harness.ts';
import { largeService, node, service, VersionMaker } from './fixtures.ts';
import { ackForHelper } from './publisher-helpers.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Subjects of stream SB_VERSIONS with how many messages each holds. */
async function subjects(w: BusWorld): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(w.planner);
  const info = await jsm.streams.info('SB_VERSIONS', { subjects_filter: '>' });
  return info.state.subjects ?? {};
}

describe('a delta in parts', () => {
  it.each([
    ['signed', false],
    ['unsigned (each part vouched for by its payload digest)', true],
  ])(
    'a change to a service of 1,000 endpoints: parts then the delta, no checkpoint; a node applies it as a delta: %s',
    async (_how, unsigned) => {
      world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 100, maxPayload: 64 * 1024, unsigned });
      const m = new VersionMaker();
      const v1 = m.next({ upsertServices: [service(1), largeService('ns/big', 1000)], upsertNodes: [node('n1')] });
      await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
      await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
      const a = await world.startApplier('n1');
      await world.received.waitFor(ackForHelper('n1', 1), 'ack 1');

      // every endpoint moves by 10: the service's entry, ~100 KB, is the delta
      const v2 = m.next({ upsertServices: [largeService('ns/big', 1000, 10)] });
      const r2 = await world.publisher.publishNext({
        header: v2.delta,
        delta: v2.delta.delta,
        data: () => {
          throw new Error('no checkpoint of version 2 may be built');
        },
      });
      expect(r2.map((r) => r.form)).toEqual(['delta']);
      const messages = r2[0]?.messages ?? 0;
      expect(messages).toBeGreaterThanOrEqual(4); // its parts and the delta message
      expect(world.publisher.lastCheckpointVersion()).toBe(1);
      const held = await subjects(world);
      const parts = Object.keys(held).filter((s) => {
        const p = parseVersionSubject(s);
        return p?.form === 'part' && p.version === 2;
      });
      expect(parts.length).toBe(messages - 1);
      expect(parts.every((s) => held[s] === 1)).toBe(true);
      expect(Object.keys(held).some((s) => s.startsWith('sb.v.checkpoint.2.'))).toBe(false);

      // read back: the same delta, its entry hashes vouched (every part is signed, or digested)
      const reader = new VersionReader(world.planner, unsigned ? {} : { verifier: world.verifier });
      const got = await reader.delta(2);
      expect(got.ok).toBe(true);
      if (!got.ok) return;
      expect(got.value.hash).toBe(v2.delta.hash);
      expect(got.value.delta).toEqual(v2.delta.delta);
      expect(got.value.entryHashes?.services).toHaveLength(1);
      expect(got.baseCheckpoint).toBe(1);
      expect(got.bytes).toBeGreaterThan(3 * 32 * 1024);

      // the node one version behind takes it as a delta, not a checkpoint
      await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
      const ack2 = await world.received.waitFor(ackForHelper('n1', 2), 'ack 2');
      expect(ack2.kind === 'ack' && ack2.v.dataHash).toBe(m.index.hash());
      const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2');
      expect(ev.type === 'ack' && ev.path).not.toBe('checkpoint');
      expect(a.dataplane.last).toEqual(renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG));
    },
  );

  it('a planner that stopped between the parts and the delta message publishes the version again: no part twice', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    const v2 = m.next({ upsertServices: [largeService('ns/big', 1000)] });
    // a publisher whose lease ends once its parts are stored: asked before each part, once more as
    // its chain finds no further part, then before the delta message, which it refuses
    const parts = Math.ceil(artifactBytes(v2.delta, deltaBytesLimit(32 * 1024, 16)).length / (32 * 1024));
    let asked = 0;
    const stopping = await VersionPublisher.open({
      nc: world.planner,
      checkpointEvery: 100,
      signer: world.signer,
      mayAppend: () => (asked++ > parts ? 'lease lost (test)' : undefined),
    });
    await expect(
      stopping.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data }),
    ).rejects.toThrow(/lease lost \(test\)/);
    const partial = await subjects(world);
    expect(partial['sb.v.delta.2']).toBeUndefined();
    expect(Object.keys(partial).filter((s) => s.startsWith('sb.v.dpart.2.')).length).toBe(parts);
    // restarted: version 1 is the last published (parts name no version); version 2 goes out
    // whole, its stored parts deduped
    const restarted = await VersionPublisher.open({ nc: world.planner, checkpointEvery: 100, signer: world.signer });
    expect(restarted.lastPublishedVersion()).toBe(1);
    const r2 = await restarted.publishNext({
      header: v2.delta,
      delta: v2.delta.delta,
      data: () => v2.checkpoint().data,
    });
    expect(r2.map((r) => [r.form, r.duplicate])).toEqual([['delta', true]]); // its parts were stored
    const after = await subjects(world);
    const stored = Object.keys(after).filter((s) => s.startsWith('sb.v.dpart.2.'));
    expect(stored.length).toBe(parts);
    expect(stored.every((s) => after[s] === 1)).toBe(true);
    expect(after['sb.v.delta.2']).toBe(1);
    const got = await new VersionReader(world.planner, { verifier: world.verifier }).delta(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
    expect(await restarted.lacks()).toBeUndefined();
  });

  it('a newer leader claiming the stream mid-parts fences the old one: its delta message is never stored; readers get the version 2 of the new leader', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024 });
    const w = world;
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    const other = await connectBus({ servers: w.server.url, name: 'new-leader', auth: PLANNER });
    try {
      const next = await VersionPublisher.open({ nc: other, signer: w.signer, checkpointEvery: 100 });
      // the old leader's connection: its part 2 of version 2 (and any later one) reaches the server
      // only after the new leader's claim (term 9) is stored
      let claim: Promise<void> | undefined;
      const nc = new Proxy(w.planner, {
        get(target, prop) {
          if (prop === 'request')
            return async (subject: string, payload: Uint8Array, opts: Parameters<NatsConnection['request']>[2]) => {
              const p = parseVersionSubject(subject);
              if (p?.form === 'part' && p.version === 2 && p.chunk >= 2) await (claim ??= next.claim(9, 'new'));
              return target.request(subject, payload, opts) as Promise<Msg>;
            };
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const old = await VersionPublisher.open({ nc, signer: w.signer, checkpointEvery: 100 });
      await old.claim(5, 'old');
      await old.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
      const oldV2 = m.next({ upsertServices: [largeService('ns/big', 1000)] });
      await expect(
        old.publishNext({ header: oldV2.delta, delta: oldV2.delta.delta, data: () => oldV2.checkpoint().data }),
      ).rejects.toThrow(StaleLeaderError);
      expect(claim).toBeDefined();
      const held = await subjects(w);
      expect(held['sb.v.delta.2']).toBeUndefined();
      // the new leader's version 2, other content (its own change): parts of both are stored, the
      // reader takes the ones carrying the hash the stored delta message names
      const m2 = new VersionMaker();
      m2.next({ upsertServices: [service(1)] });
      const newV2 = m2.next({ upsertServices: [largeService('ns/big', 1000, 7)] });
      await next.claim(9, 'new');
      await next.publishNext({ header: newV2.delta, delta: newV2.delta.delta, data: () => newV2.checkpoint().data });
      const got = await new VersionReader(w.planner, { verifier: w.verifier }).delta(2);
      expect(got.ok && got.value.hash).toBe(newV2.delta.hash);
      expect(newV2.delta.hash).not.toBe(oldV2.delta.hash);
      expect(await next.lacks()).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('a foreign message stored on a part subject before the planner is skipped; a lost part is a lack', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    // someone with write access to the stream's subjects got there first, with a part's headers
    const js = jetstream(world.planner);
    const h = (await import('@nats-io/transport-node')).headers();
    h.set(H.version, '2');
    h.set(H.hash, 'not-the-hash');
    h.set(H.chunk, '0');
    h.set(H.chunks, '2');
    await js.publish(deltaPartSubject(2, 0), new TextEncoder().encode('{"junk":'), { headers: h });
    const v2 = m.next({ upsertServices: [largeService('ns/big', 1000)] });
    await world.publisher.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data });
    const rejected: string[] = [];
    const reader = new VersionReader(world.planner, {
      verifier: world.verifier,
      onRejected: (subject, why) => rejected.push(`${subject}: ${why}`),
    });
    const got = await reader.delta(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
    expect(rejected).toEqual(['sb.v.dpart.2.0: unsigned']);
    expect(await world.publisher.lacks()).toBeUndefined();
    // a part gone (a purge by hand): the version cannot be read, and the publisher says what it lacks
    const jsm = await jetstreamManager(world.planner);
    await jsm.streams.purge('SB_VERSIONS', { filter: deltaPartSubject(2, 1) });
    const lost = await reader.delta(2);
    expect(lost.ok).toBe(false);
    expect(!lost.ok && lost.error).toMatch(/^delta 2 part 1 of \d+: /);
    expect(await world.publisher.lacks()).toMatch(/^parts of delta 2 \(what a node needs to load version 2\)$/);
  });

  it('a delta over its most parts still forces a checkpoint (an initial sync, a mass change)', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024, deltaParts: 2 });
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: [service(1)] });
    await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
    // ~100 KB: more than 2 messages of 32 KiB
    const v2 = m.next({ upsertServices: [largeService('ns/big', 1000)] });
    const r2 = await world.publisher.publishNext({
      header: v2.delta,
      delta: v2.delta.delta,
      data: () => v2.checkpoint().data,
    });
    expect(r2.map((r) => r.form)).toEqual(['checkpoint', 'delta']);
    expect(r2[1]?.bytes).toBe(0);
    const got = await new VersionReader(world.planner, { verifier: world.verifier }).delta(2);
    expect(!got.ok && got.checkpointOnly?.hash).toBe(v2.delta.hash);
    const held = await subjects(world);
    expect(Object.keys(held).some((s) => s.startsWith('sb.v.dpart.'))).toBe(false);
  });

  it('an oversize delta whose entries come with their texts is never serialised again (an initial sync: the whole cluster)', async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 100, maxPayload: 64 * 1024, deltaParts: 2 });
    const m = new VersionMaker();
    const big = largeService('ns/big', 1000);
    const v1 = m.next({ upsertServices: [service(1), big] });
    const entries = v1.delta.delta.upsertServices;
    const texts = new Map<object, string>(entries.map((e) => [e, JSON.stringify(e)]));
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      const r1 = await world.publisher.publishNext({
        header: v1.delta,
        delta: v1.delta.delta,
        data: () => v1.checkpoint().data,
        texts,
      });
      expect(r1.map((r) => r.form)).toEqual(['checkpoint', 'delta']);
      // the planner's texts stand in for every entry: deciding the delta is oversize, at either
      // step, and encoding the checkpoint read them instead of serialising the entries again
      const again = stringify.mock.calls.filter(([v]) => entries.includes(v as never));
      expect(again.length).toBe(0);
    } finally {
      stringify.mockRestore();
    }
    const got = await new VersionReader(world.planner, { verifier: world.verifier }).delta(1);
    expect(!got.ok && got.checkpointOnly?.hash).toBe(v1.delta.hash);
  });
});
