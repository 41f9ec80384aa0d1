// Every publisher here has deltaParts 1: version 2's oversize delta forces its checkpoint, whose
// chunks this file follows (a delta in parts goes through the same chain: delta-parts.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import {
  connectBus,
  encodeArtifact,
  signerFromKey,
  StaleLeaderError,
  VersionPublisher,
  VersionReader,
  verifierFromPem,
} from '../../../libs/bus/index.ts';
import { generateKeyPairSync } from 'node:crypto';
import { PLANNER, startBusWorld, type BusWorld } from './bus-harness.ts';
import { startNatsCluster } from '../../support/nats-cluster.ts';
import { service, VersionMaker } from './fixtures.ts';

/**
 * A checkpoint's chunks go to JetStream pipelined (libs/bus/chained-append.ts): up to `pipeline`
 * in flight, chunk i expecting the stream's last sequence base+i and its last message id to be
 * chunk i-1's. On a real nats-server: a newer leader's claim landing mid-checkpoint fails the
 * publish with nothing of it stored after the claim and readers left on the previous version; a
 * foreign message landing mid-checkpoint is stepped over; a retry after a lost ack stores no
 * chunk twice.
 */
let world: BusWorld | undefined;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await world?.close();
  world = undefined;
});

type Request = NatsConnection['request'];

/**
 * `nc` with its requests (a JetStream publish is one) passed through `hook`, which decides when
 * (and whether) the real request is made and what its caller is answered.
 */
function intercepted(
  nc: NatsConnection,
  hook: (subject: string, send: () => Promise<Msg>) => Promise<Msg>,
): NatsConnection {
  return new Proxy(nc, {
    get(target, prop) {
      if (prop === 'request')
        return ((subject, payload, opts) =>
          hook(subject, () => target.request(subject, payload, opts))) satisfies Request;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const CHUNK = /^sb\.v\.checkpoint\.(\d+)\.(\d+)$/;
const chunkOf = (subject: string) => {
  const m = CHUNK.exec(subject);
  return m ? { version: Number(m[1]), chunk: Number(m[2]) } : undefined;
};

/** A world whose chunks are 32 KiB, and two versions: v1 small, v2 a checkpoint of many chunks. */
async function setUp() {
  world = await startBusWorld({ nodes: [], checkpointEvery: 100, deltaParts: 1, maxPayload: 64 * 1024 });
  const m = new VersionMaker();
  const v1 = m.next({ upsertServices: [service(1)] });
  const v2 = m.next({ upsertServices: Array.from({ length: 400 }, (_, i) => service(i + 2, 10)) });
  return { w: world, v1, v2 };
}

type Version = Awaited<ReturnType<typeof setUp>>['v1'];
const publish = (p: VersionPublisher, v: Version) =>
  // a forced checkpoint (v2's delta is far over one message): chunks, then the marker naming them
  p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });

async function subjectCounts(nc: NatsConnection, filter: string): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info('SB_VERSIONS', { subjects_filter: filter });
  return info.state.subjects ?? {};
}

/**
 * A second publisher (the new leader) and the old leader's connection, whose chunk 5 and every
 * later one of version 2 reach the server only after the new leader's claim (term 9) is stored (in
 * their order); chunks 0-4 may be in flight meanwhile.
 */
async function newLeaderClaimingAtChunk5(w: BusWorld, signer: BusWorld['signer'] | undefined) {
  const other = await connectBus({ servers: w.server.url, name: 'new-leader', auth: PLANNER });
  closers.push(() => other.close());
  const next = await VersionPublisher.open({ nc: other, signer, checkpointEvery: 100, deltaParts: 1 });
  let claim: Promise<void> | undefined;
  const nc = intercepted(w.planner, async (subject, send) => {
    const c = chunkOf(subject);
    if (c?.version === 2 && c.chunk >= 5) {
      claim ??= next.claim(9, 'new');
      await claim;
    }
    return send();
  });
  return { next, nc, claimed: () => claim };
}

describe('pipelined checkpoint publish', () => {
  it('sends several chunks before the first is acknowledged; stored in order, read back whole', async () => {
    const { w, v1, v2 } = await setUp();
    let inFlight = 0;
    let most = 0;
    const nc = intercepted(w.planner, async (subject, send) => {
      if (!chunkOf(subject)) return send();
      most = Math.max(most, ++inFlight);
      try {
        return await send();
      } finally {
        inFlight--;
      }
    });
    const p = await VersionPublisher.open({ nc, signer: w.signer, checkpointEvery: 100, deltaParts: 1, pipeline: 6 });
    await p.claim(3, 'a');
    await publish(p, v1);
    const [cp] = await publish(p, v2);
    expect(cp!.form).toBe('checkpoint');
    expect(cp!.messages).toBeGreaterThan(12);
    expect(most).toBe(6); // one at a time before this change
    // chunk i directly behind chunk i-1
    const jsm = await jetstreamManager(w.planner);
    const first = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.checkpoint.2.0' });
    for (let i = 1; i < cp!.messages; i++) {
      const c = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: `sb.v.checkpoint.2.${i}` });
      expect(c!.seq).toBe(first!.seq + i);
    }
    const got = await new VersionReader(w.planner, { verifier: w.verifier }).checkpoint(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
  });

  it('a newer leader claiming the stream mid-checkpoint fails the publish: nothing of it after the claim, readers stay on version 1', async () => {
    const { w, v1, v2 } = await setUp();
    const { next, nc, claimed } = await newLeaderClaimingAtChunk5(w, w.signer);
    const old = await VersionPublisher.open({
      nc,
      signer: w.signer,
      checkpointEvery: 100,
      deltaParts: 1,
      pipeline: 8,
    });
    await old.claim(5, 'old');
    await publish(old, v1);
    await expect(publish(old, v2)).rejects.toThrow(StaleLeaderError);
    expect(claimed()).toBeDefined();

    const jsm = await jetstreamManager(w.planner);
    const claim = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.term' });
    expect(claim!.header.get('Sb-Term')).toBe('9');
    const info = await jsm.streams.info('SB_VERSIONS');
    // the claim is the stream's last message: the old leader stored nothing after it
    expect(info.state.last_seq).toBe(claim!.seq);
    const chunks = await subjectCounts(w.planner, 'sb.v.checkpoint.2.>');
    expect(Object.keys(chunks).length).toBeGreaterThan(0); // some chunks made it before the claim...
    expect(Object.keys(chunks).length).toBeLessThanOrEqual(5); // ...none from chunk 5 on
    expect(await subjectCounts(w.planner, 'sb.v.delta.>')).toEqual({ 'sb.v.delta.1': 1 });

    // readers: version 2 does not exist, its partial checkpoint is not one, version 1 is whole
    const reader = new VersionReader(w.planner, { verifier: w.verifier });
    const d2 = await reader.delta(2);
    expect(!d2.ok && d2.missing).toBe(true);
    expect((await reader.checkpoint(2)).ok).toBe(false);
    const d1 = await reader.delta(1);
    expect(d1.ok && d1.value.hash).toBe(v1.delta.hash);
    const fresh = await VersionPublisher.open({ nc: w.planner, signer: w.signer, checkpointEvery: 100, deltaParts: 1 });
    expect(fresh.lastPublishedVersion()).toBe(1);

    // the new leader publishes version 2 (the same content, as its caught-up log has it) whole
    await publish(next, v2);
    const cp2 = await reader.checkpoint(2);
    expect(cp2.ok && cp2.value.hash).toBe(v2.delta.hash);
    const marker = await reader.delta(2);
    expect(!marker.ok && marker.checkpointOnly?.hash).toBe(v2.delta.hash);
    expect(Object.values(await subjectCounts(w.planner, 'sb.v.checkpoint.2.>')).every((n) => n === 1)).toBe(true);
  });

  it.each([
    ['signed', false],
    ['unsigned', true],
  ])(
    "%s: after a partial checkpoint from a deposed leader, the new leader's version 2 with OTHER content reads whole",
    async (_mode, unsigned) => {
      world = await startBusWorld({ nodes: [], checkpointEvery: 100, deltaParts: 1, maxPayload: 64 * 1024, unsigned });
      const w = world;
      const signer = unsigned ? undefined : w.signer;
      const verifier = unsigned ? undefined : w.verifier;
      const m = new VersionMaker();
      const v1 = m.next({ upsertServices: [service(1)] });
      const v2 = m.next({ upsertServices: Array.from({ length: 400 }, (_, i) => service(i + 2, 10)) });
      // What the new leader's log makes version 2 from: the same version 1, other services after it.
      const m2 = new VersionMaker();
      m2.next({ upsertServices: [service(1)] });
      const v2b = m2.next({ upsertServices: Array.from({ length: 400 }, (_, i) => service(i + 2, 9)) });
      expect(v2b.delta.hash).not.toBe(v2.delta.hash);

      const { next, nc } = await newLeaderClaimingAtChunk5(w, signer);
      const old = await VersionPublisher.open({ nc, signer, checkpointEvery: 100, deltaParts: 1, pipeline: 8 });
      await old.claim(5, 'old');
      await publish(old, v1);
      await expect(publish(old, v2)).rejects.toThrow(StaleLeaderError);
      expect(Object.keys(await subjectCounts(w.planner, 'sb.v.checkpoint.2.>')).length).toBeGreaterThan(0);

      // Within the stream's dedupe window: chunks of other content must not count as already stored.
      await publish(next, v2b);
      const reader = new VersionReader(w.planner, { verifier });
      const marker = await reader.delta(2);
      expect(!marker.ok && marker.checkpointOnly?.hash).toBe(v2b.delta.hash);
      const cp2 = await reader.checkpoint(2);
      expect(cp2.ok ? cp2.value.hash : cp2.error).toBe(v2b.delta.hash);
    },
  );

  it("writes a chunk into a buffer again only once the stream acknowledged the chunk it held: every chunk stored is the codec's bytes", async () => {
    const { w, v1, v2 } = await setUp();
    // the chunks' payloads as the publisher hands them to the connection, which sends them later
    // (its writes are flushed in a microtask): a buffer written again before the stream answered
    // the chunk in it would reach the server holding the next chunk's bytes
    const buffers = new Set<ArrayBufferLike>();
    const nc = w.planner;
    const publishOf = nc.publish.bind(nc);
    nc.publish = (subject, payload, opts) => {
      if (chunkOf(subject)?.version === 2 && payload instanceof Uint8Array) buffers.add(payload.buffer);
      return publishOf(subject, payload, opts);
    };
    const p = await VersionPublisher.open({ nc, signer: w.signer, checkpointEvery: 100, deltaParts: 1, pipeline: 4 });
    await p.claim(3, 'a');
    await publish(p, v1);
    const [cp] = await publish(p, v2);
    const want = encodeArtifact(v2.checkpoint(), { chunkBytes: 32 * 1024, baseCheckpoint: 1 }).map((m) => m.payload);
    expect(cp!.messages).toBe(want.length);
    expect(want.length).toBeGreaterThan(12);
    const jsm = await jetstreamManager(w.planner);
    for (let i = 0; i < want.length; i++) {
      const stored = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: `sb.v.checkpoint.2.${i}` });
      expect(Buffer.from(stored!.data).equals(Buffer.from(want[i]!)), `chunk ${i}`).toBe(true);
    }
    // 4 in flight and the one being written: 5 buffers for the whole checkpoint, not one per chunk
    expect(buffers.size).toBeGreaterThan(0);
    expect(buffers.size).toBeLessThanOrEqual(5);
    const got = await new VersionReader(w.planner, { verifier: w.verifier }).checkpoint(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
  });

  it('a foreign message landing mid-checkpoint is stepped over: the rest is appended, the checkpoint reads whole', async () => {
    const { w, v1, v2 } = await setUp();
    const foreign: string[] = [];
    let injected: Promise<void> | undefined;
    const nc = intercepted(w.planner, async (subject, send) => {
      const c = chunkOf(subject);
      if (c?.version === 2 && c.chunk >= 4) {
        // a core publish on our subjects (anyone allowed to publish there can store one)
        injected ??= (async () => {
          w.planner.publish('sb.v.delta.77', 'garbage');
          await w.planner.flush();
        })();
        await injected;
      }
      return send();
    });
    const p = await VersionPublisher.open({
      nc,
      signer: w.signer,
      checkpointEvery: 100,
      deltaParts: 1,
      pipeline: 8,
      onForeign: (s, why) => foreign.push(`${s}: ${why}`),
    });
    await p.claim(3, 'a');
    await publish(p, v1);
    const [cp, marker] = await publish(p, v2);
    expect(marker!.version).toBe(2);
    expect(foreign).toContain('sb.v.delta.77: not one of ours');
    const counts = await subjectCounts(w.planner, 'sb.v.checkpoint.2.>');
    expect(Object.keys(counts)).toHaveLength(cp!.messages);
    expect(Object.values(counts).every((n) => n === 1)).toBe(true);
    const got = await new VersionReader(w.planner, { verifier: w.verifier }).checkpoint(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
  });

  it('a retry after a lost ack stores no chunk twice', async () => {
    const { w, v1, v2 } = await setUp();
    let lost = 0;
    const nc = intercepted(w.planner, async (subject, send) => {
      const c = chunkOf(subject);
      const answer = await send(); // stored by the server either way
      if (c?.version === 2 && c.chunk === 6 && lost++ === 0) throw new Error('simulated: the ack of chunk 6 was lost');
      return answer;
    });
    const p = await VersionPublisher.open({ nc, signer: w.signer, checkpointEvery: 100, deltaParts: 1, pipeline: 8 });
    await p.claim(3, 'a');
    await publish(p, v1);
    await expect(publish(p, v2)).rejects.toThrow(/ack of chunk 6 was lost/);
    expect(await subjectCounts(w.planner, 'sb.v.delta.>')).toEqual({ 'sb.v.delta.1': 1 }); // no marker without every chunk
    // the planner's publish loop retries the version
    const [cp, marker] = await publish(p, v2);
    expect(cp!.duplicate).toBe(true);
    expect(marker!.duplicate).toBe(false);
    const counts = await subjectCounts(w.planner, 'sb.v.checkpoint.2.>');
    expect(Object.keys(counts)).toHaveLength(cp!.messages);
    expect(Object.values(counts).every((n) => n === 1)).toBe(true);
    const reader = new VersionReader(w.planner, { verifier: w.verifier });
    const got = await reader.checkpoint(2);
    expect(got.ok && got.value.hash).toBe(v2.delta.hash);
    expect(p.lastPublishedVersion()).toBe(2);
  });
});

describe('pipelined checkpoint publish on a 3-server cluster (R3 stream: expectations checked in Raft order)', () => {
  it('stores the chunks in order; a newer leader claiming mid-checkpoint through another server fences it', async () => {
    const cluster = await startNatsCluster({ config: 'max_payload: 65536' });
    closers.push(() => cluster.stop());
    const [u1, u2] = cluster.urls.split(',');
    const a = await connectBus({ servers: u1!, name: 'leader-a' });
    closers.push(() => a.close());
    const b = await connectBus({ servers: u2!, name: 'leader-b' });
    closers.push(() => b.close());
    const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey);
    const m = new VersionMaker();
    const v1 = m.next({ upsertServices: Array.from({ length: 300 }, (_, i) => service(i, 10)) });
    const v2 = m.next({ upsertServices: Array.from({ length: 300 }, (_, i) => service(i, 10, 2)) });
    const next = await VersionPublisher.open({ nc: b, signer, checkpointEvery: 100, deltaParts: 1, replicas: 3 });
    let claimed: Promise<void> | undefined;
    const nc = intercepted(a, async (subject, send) => {
      const c = chunkOf(subject);
      if (c?.version === 2 && c.chunk >= 5) {
        claimed ??= next.claim(9, 'b');
        await claimed;
      }
      return send();
    });
    const old = await VersionPublisher.open({
      nc,
      signer,
      checkpointEvery: 100,
      deltaParts: 1,
      replicas: 3,
      pipeline: 8,
    });
    await old.claim(5, 'a');
    const [cp1] = await publish(old, v1);
    expect(cp1!.messages).toBeGreaterThan(10);
    const jsm = await jetstreamManager(a);
    const c0 = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.checkpoint.1.0' });
    for (let i = 1; i < cp1!.messages; i++)
      expect((await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: `sb.v.checkpoint.1.${i}` }))!.seq).toBe(
        c0!.seq + i,
      );
    const reader = new VersionReader(a, { verifier: verifierFromPem(signer.publicKeyPem) });
    const got1 = await reader.checkpoint(1);
    expect(got1.ok && got1.value.hash).toBe(v1.delta.hash);

    await expect(publish(old, v2)).rejects.toThrow(StaleLeaderError);
    const claim = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.term' });
    expect(claim!.header.get('Sb-Term')).toBe('9');
    expect((await jsm.streams.info('SB_VERSIONS')).state.last_seq).toBe(claim!.seq);
    const d2 = await reader.delta(2);
    expect(!d2.ok && d2.missing).toBe(true);
    expect((await reader.checkpoint(2)).ok).toBe(false);
  }, 60_000);
});
