// One inbound message per event: the default target's notice carries the version's delta as the
// stream stored it. And the hazard that removed the live sb.v.delta.* subscription: a core
// subscriber there also receives publishes the stream refuses (a fenced planner with the shared
// signing key), so a node following it could apply a version the stream never held.

import { afterEach, describe, expect, it } from 'vitest';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import {
  artifactStatement,
  encodeArtifact,
  H,
  targetStatement,
  VersionPublisher,
  VersionReader,
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
const dataHashOf = (e: Received) => (e.kind === 'ack' ? e.v.dataHash : undefined);

/** Publishes the next version and moves the default target to it, the delta on the notice. */
async function step(
  w: BusWorld,
  m: VersionMaker,
  delta: Parameters<VersionMaker['next']>[0],
  p: VersionPublisher = w.publisher,
) {
  const v = m.next(delta);
  await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  await w.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 }, p.storedDelta(v.delta.version));
  return v.delta;
}

describe('target notices carry the delta', () => {
  it('a node gets each event as one inbound message and fetches nothing', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await step(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    for (let i = 2; i <= 4; i++) {
      const before = a.nc.stats().inMsgs;
      const mark = a.events.mark();
      await step(world, m, { upsertServices: [service(i)] });
      const ack = await world.received.waitFor(ackFor('n1', i), `ack ${i}`);
      expect(dataHashOf(ack)).toBe(m.index.hash());
      const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === i, `session ack ${i}`, {
        from: mark,
      });
      expect(ev.type === 'ack' && { path: ev.path, bytes: ev.bytes }).toEqual({ path: 'deltas', bytes: 0 });
      expect(a.nc.stats().inMsgs - before).toBe(1);
    }
  });

  it('a delta the stream refused (a fenced planner holding the same key) is never applied', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const first = { upsertServices: [service(1)], upsertNodes: [node('n1')] };
    await step(world, m, first);
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');

    // The deposed planner: same signing key, its own version 2, refused by the stream's fence.
    const stale = new VersionMaker();
    stale.next(first);
    const v2stale = stale.next({ upsertServices: [service(99)] }).delta;
    const [msg] = encodeArtifact(v2stale, { chunkBytes: 512 * 1024, baseCheckpoint: 1 });
    const h = natsHeaders();
    for (const [k, v] of Object.entries(msg!.headers)) h.set(k, v);
    h.set(
      H.sig,
      world.signer.sign(
        artifactStatement({
          subject: msg!.subject,
          version: 2,
          parent: 1,
          hash: v2stale.hash,
          anchor: '',
          payload: msg!.payload,
        }),
      ),
    );
    await expect(
      jetstream(world.planner).publish(msg!.subject, msg!.payload, { headers: h, expect: { lastSequence: 1 } }),
    ).rejects.toThrow();

    // The leader's version 2 is what the stream holds and what the node must run.
    await step(world, m, { upsertServices: [service(2)] });
    expect(m.index.hash()).not.toBe(stale.index.hash());
    const ack = await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    const stored = await new VersionReader(world.planner, { verifier: world.verifier }).delta(2);
    expect(stored.ok && stored.value.hash).toBe(m.index.hash());
  });

  it('a tampered delta on a genuine notice is dropped; the node fetches from the stream', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await step(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const mark = a.events.mark();
    const v = m.next({ upsertServices: [service(2)] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const stored = world.publisher.storedDelta(2)!;
    expect(stored.headers[H.sig]).toBeTruthy();
    const tampered = { ...stored, payload: stored.payload.replace('10.96.0.3', '10.96.0.4') };
    expect(tampered.payload).not.toBe(stored.payload);
    // altered on the way: the planner's notice as a node receives it (the planner signs only what
    // the stream stored; test/libs/applier/notice-wire.test.ts has the one-signature notice's case)
    const issued = Date.now() + 60_000;
    const target = {
      version: 2,
      configRevision: 0,
      issued,
      sig: world.signer.sign(targetStatement('default', { version: 2, configRevision: 0 }, issued)),
    };
    world.planner.publish('sb.target.default', JSON.stringify({ revision: 0, target, delta: tampered }));
    const ack = await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    await a.events.waitFor(
      (e) => e.type === 'rejected' && /notice delta: bad signature/.test(e.reason),
      'tampered delta rejected',
      { from: mark },
    );
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', { from: mark });
    expect(ev.type === 'ack' && ev.bytes).toBeGreaterThan(0); // read from the stream
  });

  it('a delta too large for a notice stays off it; nodes fetch it', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const notices: { delta?: unknown }[] = [];
    const sub = world.planner.subscribe('sb.target.default', {
      callback: (_e, msg) => {
        notices.push(msg.json());
      },
    });
    const m = new VersionMaker();
    await step(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const v = m.next({ upsertServices: [service(2)] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const huge = {
      headers: world.publisher.storedDelta(2)!.headers,
      payload: 'x'.repeat((world.planner.info?.max_payload ?? 1048576) / 2),
    };
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 }, huge);
    await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    await world.planner.flush();
    sub.unsubscribe();
    expect(notices.map((n) => n.delta !== undefined)).toEqual([true, false]);
    expect(a.events.all.some((e) => e.type === 'rejected')).toBe(false);
  });

  it('a republished version (found already on the stream) is not attached: only what this process stored', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await step(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    expect(world.publisher.storedDelta(1)).toBeDefined();
    const again = await VersionPublisher.open({ nc: world.planner, checkpointEvery: 5, signer: world.signer });
    const v1 = m.history[0]!;
    await again.publishVersion(v1.delta);
    expect(again.storedDelta(1)).toBeUndefined();
    expect(world.publisher.storedDelta(2)).toBeUndefined();
  });
});
