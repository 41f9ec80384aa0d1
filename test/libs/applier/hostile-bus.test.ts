import { afterEach, describe, expect, it } from 'vitest';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { generateKeyPairSync } from 'node:crypto';
import {
  artifactStatement,
  encodeArtifact,
  signerFromKey,
  TargetStore,
  VersionPublisher,
} from '../../../libs/bus/index.ts';
import { startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Received = BusWorld['received']['all'][number];
const ackFor = (n: string, version: number) => (e: Received) =>
  e.kind === 'ack' && e.v.node === n && e.v.version === version;

async function publish(
  w: BusWorld,
  m: VersionMaker,
  delta: Parameters<VersionMaker['next']>[0],
  p: VersionPublisher = w.publisher,
) {
  const v = m.next(delta);
  await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  return v.delta;
}

describe('the bus cannot roll nodes back or wedge the planner', () => {
  it('a forged target notice (revision 999999999999 pointing at version 1) moves nothing and wedges nothing', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    const mark = a.events.mark();
    // the old notice format, and the new one with a made-up issued stamp and no valid signature
    world.planner.publish(
      'sb.target.default',
      JSON.stringify({ revision: 999999999999, target: { version: 1, configRevision: 0 } }),
    );
    world.planner.publish(
      'sb.target.node.n1',
      JSON.stringify({
        revision: 999999999999,
        target: { version: 1, configRevision: 0, issued: 999999999999999, sig: 'AAAA' },
      }),
    );
    // a genuinely signed entry for another key replayed onto this node's key
    const forger = signerFromKey(generateKeyPairSync('ed25519').privateKey);
    world.planner.publish(
      'sb.target.node.n1',
      JSON.stringify({
        revision: 1,
        target: {
          version: 1,
          configRevision: 0,
          issued: 999999999999999,
          sig: forger.sign('sb-target\nnode.n1\n1\n0\n999999999999999'),
        },
      }),
    );
    await world.planner.flush();
    await a.events.waitFor((e) => e.type === 'rejected' && /signature/.test(e.reason), 'forgery rejected', {
      from: mark,
    });
    const rejected = a.events.all.slice(mark).filter((e) => e.type === 'rejected' && e.kind === 'target');
    expect(rejected.length).toBe(3);
    // each is reported once: not again as a bus error (two log lines per dropped notice: probe10 H12)
    expect(a.events.all.slice(mark).filter((e) => e.type === 'error')).toEqual([]);
    expect(a.session.status()).toMatchObject({ applied: { version: 2 }, target: { version: 2 } });
    // genuine targets still move the node (the forged revision did not raise the bar)
    await publish(world, m, { upsertServices: [service(3)] });
    await world.targets.setDefaultTarget({ version: 3, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 3), 'ack 3 after the forgery');
    expect(world.received.all.filter((e) => e.kind === 'ack').map((e) => e.v.version)).toEqual([2, 3]);
  });

  it('unsigned and badly signed versions are dropped and counted; the node still catches up', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    // an impostor publisher with its own key stores version 2 first (a core publish on our subject)
    const mark = a.events.mark();
    const forger = signerFromKey(generateKeyPairSync('ed25519').privateKey);
    const fake = new VersionMaker();
    fake.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const fv = fake.next({ removeServices: ['ns/svc-1'] });
    const [msg] = encodeArtifact(fv.delta, { chunkBytes: 1e6, baseCheckpoint: 1, anchor: '' });
    const js = jetstream(world.planner);
    for (const sig of [
      undefined,
      'AAAA',
      forger.sign(
        artifactStatement({
          subject: msg!.subject,
          version: 2,
          parent: 1,
          hash: fv.delta.hash,
          anchor: '',
          payload: msg!.payload,
        }),
      ),
    ]) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(msg!.headers)) h.set(k, v);
      if (sig) h.set('Sb-Sig', sig);
      await js.publish(msg!.subject, msg!.payload, { headers: h });
    }
    // the genuine publisher still publishes version 2 after the foreign message
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const ack = await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(ack.kind === 'ack' && ack.v.dataHash).toBe(m.index.hash());
    const reasons = a.events.all
      .slice(mark)
      .flatMap((e) => (e.type === 'rejected' && e.kind === 'artifact' ? [e.reason] : []));
    expect(reasons).toEqual(
      expect.arrayContaining([expect.stringMatching(/unsigned/), expect.stringMatching(/bad signature/)]),
    );
    expect(world.received.all.some((e) => e.kind === 'nack')).toBe(false);
    expect(a.dataplane.last!.virtualServers.length).toBeGreaterThan(0);
  });

  it('a genuine delta stored first with its unsigned Sb-Checkpoint pointed past its version is skipped, not followed (review F6)', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    // the planner's own version 2, signed, copied with only the checkpoint header changed (the
    // signature does not cover it) and stored before the planner publishes it
    const v2 = m.next({ upsertServices: [service(2)] });
    const [msg] = encodeArtifact(v2.delta, { chunkBytes: 1e6, baseCheckpoint: 9, anchor: '' });
    const h = natsHeaders();
    for (const [k, v] of Object.entries(msg!.headers)) h.set(k, v);
    h.set(
      'Sb-Sig',
      world.signer.sign(
        artifactStatement({
          subject: msg!.subject,
          version: 2,
          parent: 1,
          hash: v2.delta.hash,
          anchor: '',
          payload: msg!.payload,
        }),
      ),
    );
    await jetstream(world.planner).publish(msg!.subject, msg!.payload, { headers: h });
    await world.publisher.publishNext({ header: v2.delta, delta: v2.delta.delta, data: () => v2.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    // a node starting from nothing takes the checkpoint path, which reads the delta's base
    const a = await world.startApplier('n1');
    const ack = await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(ack.kind === 'ack' && ack.v.dataHash).toBe(m.index.hash());
    expect(world.received.all.some((e) => e.kind === 'nack')).toBe(false);
    expect(
      a.events.all.some((e) => e.type === 'rejected' && /checkpoint header 9 is above the version/.test(e.reason)),
    ).toBe(true);
  });

  it('garbage stored in the versions stream never stops a planner start or a node catching up', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const js = jetstream(world.planner);
    // core publishes on our subjects: the next delta's, a checkpoint chunk's, and a copy of delta 1's headers
    world.planner.publish('sb.v.delta.2', 'garbage');
    const h = natsHeaders();
    h.set('Sb-Version', '1');
    await js.publish('sb.v.delta.1', new TextEncoder().encode('{"not":"an artifact"}'), { headers: h });
    world.planner.publish('sb.v.checkpoint.9.0', 'x');
    await world.planner.flush();
    const foreign: string[] = [];
    // a planner restart: recovery walks back over the garbage to version 1
    const again = await VersionPublisher.open({
      nc: world.planner,
      checkpointEvery: 5,
      signer: world.signer,
      onForeign: (s) => foreign.push(s),
    });
    expect(again.lastPublishedVersion()).toBe(1);
    expect(foreign).toEqual(expect.arrayContaining(['sb.v.checkpoint.9.0', 'sb.v.delta.1', 'sb.v.delta.2']));
    // it publishes version 2 although sb.v.delta.2 already holds a foreign message
    await publish(world, m, { upsertServices: [service(2)] }, again);
    expect(again.lastPublishedVersion()).toBe(2);
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const a = await world.startApplier('n1');
    const ack = await world.received.waitFor(ackFor('n1', 2), 'ack 2 past the garbage');
    expect(ack.kind === 'ack' && ack.v.dataHash).toBe(m.index.hash());
    expect(a.events.all.some((e) => e.type === 'rejected' && e.kind === 'artifact')).toBe(true);
    // the core-published delta has no headers at all: said so, not 'header says version ' (probe10 H12)
    const reasons = a.events.all.flatMap((e) => (e.type === 'rejected' ? [e.reason] : []));
    expect(reasons).toContain('no version header');
    expect(reasons.filter((r) => /header says version $/.test(r))).toEqual([]);
    const jsm = await jetstreamManager(world.planner);
    expect((await jsm.streams.info('SB_VERSIONS')).state.messages).toBeGreaterThan(4);
  });

  it('a node started before any planner waits for the bucket, then follows', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    await (await jetstreamManager(world.planner)).streams.delete('KV_sb_targets'); // as if no planner had ever run
    const a = await world.startApplier('n1');
    await expect.poll(() => a.session.status().waitingFor, { timeout: 10_000 }).toMatch(/targets bucket sb_targets/);
    const targets = await TargetStore.open({ nc: world.planner, signer: world.signer });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 1), 'ack 1 after the planner came');
    expect(a.session.status().waitingFor).toBeUndefined();
  });

  it('NATS back with an EMPTY store: republished targets (KV revisions from 1 again) are followed without a restart', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    for (let i = 0; i < 5; i++) await world.targets.setDefaultTarget({ version: 1, configRevision: 0 }); // KV revision 6
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const { nextReconnect } = await import('../bus/bus-harness.ts');
    const back = [nextReconnect(a.nc), nextReconnect(world.planner)];
    await world.server.restartEmpty();
    await Promise.all(back);
    // what a planner does on reset: recreate stream and bucket, republish from version 1
    await world.publisher.reopen();
    await world.targets.reopen();
    expect(world.publisher.lastPublishedVersion()).toBe(0);
    const m2 = new VersionMaker();
    for (const d of m.history) m2.next(d.delta.delta);
    for (const v of m2.history)
      await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await publish(world, m2, { upsertServices: [service(2)] });
    const rev = await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    expect(rev).toBe(1); // the KV revision started again
    await world.received.waitFor(ackFor('n1', 2), 'ack 2 after the store was lost');
  });
});
