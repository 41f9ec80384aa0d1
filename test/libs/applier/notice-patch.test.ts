// A large service's change rides on the target notice as a patch (libs/model/service-patch.ts):
// a node one step behind rebuilds the entry from the one it holds, hash-checked, and fetches
// nothing; a patch that is altered, unsigned where signatures are required, or does not fit the
// node's data is dropped, and the node fetches the version's delta from the stream instead.
// Real nats-server, a signed (or unsigned) publisher and target store, a real applier session.
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodePatchedDelta,
  H,
  payloadDigest,
  targetPatchStatement,
  targetStatement,
  VersionPublisher,
} from '../../../libs/bus/index.ts';
import { contentHash, diffServiceEntry, type ServiceEntry } from '../../../libs/model/index.ts';
import { startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { ackForHelper } from '../bus/publisher-helpers.ts';
import { node, service, sortedLargeService, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

const ackFor = ackForHelper;
const dataHashOf = (e: BusWorld['received']['all'][number]) => (e.kind === 'ack' ? e.v.dataHash : undefined);

/** The next version upserting `entries`, published with its patches (as the planner's data axis makes them). */
async function publishWithPatches(w: BusWorld, m: VersionMaker, entries: ServiceEntry[]) {
  const bases = entries.map((e) => [m.index.service(e.key), m.index.serviceHash(e.key)] as const);
  const v = m.next({ upsertServices: entries });
  const patches = entries.flatMap((e, i) => {
    const [base, hash] = bases[i]!;
    const p = base && diffServiceEntry(base, e, hash!, contentHash(e));
    return p ? [p] : [];
  });
  await w.publisher.publishNext({
    header: v.delta,
    delta: v.delta.delta,
    data: () => v.checkpoint().data,
    patches,
  });
  return v.delta;
}

/** Every notice on the default target's subject, as sent. */
function noticeLog(w: BusWorld) {
  const notices: { text: string; json: { delta?: unknown; patch?: { payload: string }; sig?: string } }[] = [];
  const sub = w.planner.subscribe('sb.target.default', {
    callback: (_e, msg) => {
      notices.push({ text: msg.string(), json: msg.json() });
    },
  });
  return { notices, stop: () => sub.unsubscribe() };
}

const big = (n: number, shift = 0) => sortedLargeService('ns/big', n, shift);

/** A 1,000-endpoint service and a small one, node n1; the applier at version 1. */
async function startAtVersion1(unsigned = false) {
  world = await startBusWorld({ nodes: ['n1'], unsigned });
  const m = new VersionMaker();
  const v1 = m.next({ upsertServices: [service(1), big(1000)], upsertNodes: [node('n1')] });
  await world.publisher.publishNext({ header: v1.delta, delta: v1.delta.delta, data: () => v1.checkpoint().data });
  await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
  const a = await world.startApplier('n1');
  await world.received.waitFor(ackFor('n1', 1), 'ack 1');
  return { w: world, m, a };
}

/** ns/big with endpoint `i` made not ready. */
function oneEndpointDown(i: number): ServiceEntry {
  const b = big(1000);
  const p = b.ports[0]!;
  return {
    ...b,
    ports: [{ ...p, endpoints: p.endpoints.map((e, k) => (k === i ? { ...e, ready: false } : e)) }],
  };
}

describe('target notices carry large services as patches', () => {
  it.each([
    ['signed', false],
    ['unsigned', true],
  ])(
    'one endpoint of 1,000 changes: the notice carries a patch of a few hundred bytes, and the node fetches nothing (%s)',
    async (_how, unsigned) => {
      const { w, m, a } = await startAtVersion1(unsigned);
      const log = noticeLog(w);
      for (const [version, down] of [
        [2, 10],
        [3, 500],
      ] as const) {
        const before = a.nc.stats().inMsgs;
        const mark = a.events.mark();
        const v = await publishWithPatches(w, m, [oneEndpointDown(down), service(2)]);
        expect(w.publisher.storedPatch(version)).toBeDefined();
        await w.targets.setDefaultTarget(
          { version, configRevision: 0 },
          w.publisher.storedDelta(version),
          w.publisher.storedPatch(version),
        );
        const ack = await w.received.waitFor(ackFor('n1', version), `ack ${version}`);
        expect(dataHashOf(ack)).toBe(v.hash);
        const ev = await a.events.waitFor(
          (e) => e.type === 'ack' && e.ack.version === version,
          `session ack ${version}`,
          {
            from: mark,
          },
        );
        expect(ev.type === 'ack' && { path: ev.path, bytes: ev.bytes, patched: ev.patched }).toEqual({
          path: 'deltas',
          bytes: 0,
          patched: 1,
        });
        expect(a.nc.stats().inMsgs - before).toBe(1);
      }
      await w.planner.flush();
      log.stop();
      const [n2, n3] = log.notices.slice(-2).map((n) => n.json);
      for (const n of [n2!, n3!]) {
        expect(n.delta).toBeUndefined();
        expect(n.patch).toBeDefined();
        expect(n.sig !== undefined).toBe(!unsigned);
      }
      // the delta the stream holds is the whole entry (~100 kB); the notice, a few hundred bytes of it
      const delta = w.publisher.storedDelta(3)!.payload;
      expect(delta.length).toBeGreaterThan(90_000);
      expect(log.notices.at(-1)!.text.length).toBeLessThan(delta.length / 50);
      expect(a.events.all.some((e) => e.type === 'rejected')).toBe(false);
    },
  );

  it('a patch altered on the way fails the notice signature: dropped, and the node fetches the delta', async () => {
    const { w, m, a } = await startAtVersion1();
    const mark = a.events.mark();
    const v = await publishWithPatches(w, m, [oneEndpointDown(10)]);
    const patch = w.publisher.storedPatch(2)!;
    // a node made "ready" again, the genuine notice signature kept
    const altered = { ...patch, payload: patch.payload.replace('"ready":false', '"ready":true') };
    expect(altered.payload).not.toBe(patch.payload);
    const issued = Date.now() + 60_000;
    const target = {
      version: 2,
      configRevision: 0,
      issued,
      sig: w.signer.sign(targetStatement('default', { version: 2, configRevision: 0 }, issued)),
    };
    const sig = w.signer.sign(targetPatchStatement('default', target, patch)!);
    w.planner.publish('sb.target.default', JSON.stringify({ revision: 0, target, patch: altered, sig }));
    const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(v.hash);
    await a.events.waitFor(
      (e) => e.type === 'rejected' && /bad notice signature .*patch dropped/.test(e.reason),
      'altered patch rejected',
      { from: mark },
    );
    await a.events.waitFor(
      (e) => e.type === 'rejected' && e.kind === 'patch' && /notice patch: not signed/.test(e.reason),
      'patch refused',
      {
        from: mark,
      },
    );
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', { from: mark });
    expect(ev.type === 'ack' && ev.bytes).toBeGreaterThan(90_000);
    expect(ev.type === 'ack' && ev.patched).toBe(0); // the whole entry, from the stream
  });

  it('unsigned: a patch altered on the way no longer matches its digest: dropped, and the node fetches the delta', async () => {
    const { w, m, a } = await startAtVersion1(true);
    const mark = a.events.mark();
    const v = await publishWithPatches(w, m, [oneEndpointDown(10)]);
    const patch = w.publisher.storedPatch(2)!;
    expect(patch.headers[H.payloadDigest]).toBe(payloadDigest(patch.payload));
    const altered = { ...patch, payload: patch.payload.replace('"ready":false', '"ready":true') };
    expect(altered.payload).not.toBe(patch.payload);
    const target = { version: 2, configRevision: 0, issued: Date.now() + 60_000, sig: '' };
    w.planner.publish('sb.target.default', JSON.stringify({ revision: 0, target, patch: altered }));
    const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(v.hash);
    await a.events.waitFor(
      (e) =>
        e.type === 'rejected' && e.kind === 'patch' && e.reason === 'notice patch: payload does not match its digest',
      'altered patch rejected',
      { from: mark },
    );
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', { from: mark });
    expect(ev.type === 'ack' && ev.bytes).toBeGreaterThan(90_000);
    expect(ev.type === 'ack' && ev.patched).toBe(0);
  });

  it.each([
    ['signed', false],
    ['unsigned', true],
  ])(
    "a patch that does not fit the node's data is refused when rebuilt; the node fetches the delta and runs the stream's content (%s)",
    async (_how, unsigned) => {
      const { w, m, a } = await startAtVersion1(unsigned);
      const mark = a.events.mark();
      const v = await publishWithPatches(w, m, [oneEndpointDown(10)]);
      const patch = w.publisher.storedPatch(2)!;
      // a patch made against other content (as a planner whose log forked would make): the node's
      // ns/big is not its base, so rebuilding refuses it before anything is applied
      const wrong = JSON.parse(patch.payload) as { servicePatches: { base: string }[] };
      wrong.servicePatches[0]!.base = contentHash(big(999));
      // its digest made for it (what a forked planner would send)
      const payload = JSON.stringify(wrong);
      const forged = { headers: { ...patch.headers, [H.payloadDigest]: payloadDigest(payload) }, payload };
      const issued = Date.now() + 60_000;
      const t = { version: 2, configRevision: 0 };
      const target = { ...t, issued, sig: unsigned ? '' : w.signer.sign(targetStatement('default', t, issued)) };
      const sig = unsigned ? {} : { sig: w.signer.sign(targetPatchStatement('default', target, forged)!) };
      w.planner.publish('sb.target.default', JSON.stringify({ revision: 0, target, patch: forged, ...sig }));
      const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
      expect(dataHashOf(ack)).toBe(v.hash);
      await a.events.waitFor(
        (e) =>
          e.type === 'rejected' &&
          e.kind === 'patch' &&
          /notice patch: patch of ns\/big: this node holds .*fetching the delta/.test(e.reason),
        'patch refused at rebuild',
        { from: mark },
      );
      const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', {
        from: mark,
      });
      expect(ev.type === 'ack' && ev.bytes).toBeGreaterThan(90_000);
      expect(ev.type === 'ack' && ev.patched).toBe(0);
      expect(patch.headers[H.version]).toBe('2');
    },
  );

  it('a version found already on the stream (a restarted or second planner publishing it again) carries no patch', async () => {
    const { w, m } = await startAtVersion1();
    const v = await publishWithPatches(w, m, [oneEndpointDown(10)]);
    const decoded = decodePatchedDelta(w.publisher.storedPatch(2)!.payload);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const again = await VersionPublisher.open({ nc: w.planner, checkpointEvery: 5, signer: w.signer });
    const r = await again.publishNext({
      header: v,
      delta: v.delta,
      data: () => m.history[1]!.checkpoint().data,
      patches: decoded.value.servicePatches,
    });
    expect(r.at(-1)?.duplicate).toBe(true);
    expect(again.storedDelta(2)).toBeUndefined();
    expect(again.storedPatch(2)).toBeUndefined();
  });
});
