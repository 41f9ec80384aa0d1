// The per-event wire of the default target's notice, as a node checks it: one signature over
// target and delta together (signed), carried entry hashes vouched for by that signature or by
// the payload digest (unsigned), hostile copies in transit, and rolling upgrades both ways.

import { afterEach, describe, expect, it } from 'vitest';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import {
  artifactStatement,
  deltaSubject,
  H,
  targetNoticeStatement,
  targetStatement,
  type Verifier,
} from '../../../libs/bus/index.ts';
import type { NodeState, NoticeDelta, SignedTarget } from '../../../libs/model/index.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import * as previous from '../../fixtures/previous-release/wire-schemas.ts';
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
async function step(w: BusWorld, m: VersionMaker, delta: Parameters<VersionMaker['next']>[0]) {
  const v = m.next(delta);
  await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  await w.targets.setDefaultTarget(
    { version: v.delta.version, configRevision: 0 },
    w.publisher.storedDelta(v.delta.version),
  );
  return v.delta;
}

/** A world with n1 running version 1 (service 1, five endpoints). */
async function worldAtVersion1(o: { unsigned?: boolean; verifier?: Verifier } = {}) {
  const w = await startBusWorld({ nodes: ['n1'], unsigned: o.unsigned });
  world = w;
  const m = new VersionMaker();
  await step(w, m, { upsertServices: [service(1, 5)], upsertNodes: [node('n1')] });
  const a = await w.startApplier('n1', o.verifier ? { verifier: o.verifier } : {});
  await w.received.waitFor(ackFor('n1', 1), 'ack 1');
  return { w, m, a };
}

let issued = Date.now() + 60_000;
/** The default target entry for `version` as the planner writes it (signed unless the world is unsigned). */
function targetEntry(w: BusWorld, version: number, signed = true): SignedTarget {
  issued++;
  const sig = signed ? w.signer.sign(targetStatement('default', { version, configRevision: 0 }, issued)) : '';
  return { version, configRevision: 0, issued, sig };
}

/** Sends a notice on the default target's subject as it would arrive at a node (crafted copies included). */
async function sendNotice(w: BusWorld, n: { target: SignedTarget; delta?: NoticeDelta; sig?: string }) {
  w.planner.publish('sb.target.default', JSON.stringify({ revision: 0, ...n }));
  await w.planner.flush();
}

/** A verifier that counts its verifications. */
function counting(inner: Verifier): Verifier & { calls: number } {
  const v = {
    calls: 0,
    verify: (s: string, sig: string) => {
      v.calls++;
      return inner.verify(s, sig);
    },
  };
  return v;
}

/** Whether a state the node programmed has a real server at `address`. */
const programs = (states: readonly NodeState[], address: string) =>
  states.some((s) => s.virtualServers.some((vs) => vs.realServers.some((r) => r.address === address)));

describe('signed: one signature per event', () => {
  it('a node verifies one signature per event (the notice over target and delta), not two', async () => {
    const w0 = await startBusWorld({ nodes: ['n1'] });
    world = w0;
    const verifier = counting(w0.verifier);
    const m = new VersionMaker();
    await step(w0, m, { upsertServices: [service(1, 5)], upsertNodes: [node('n1')] });
    const a = await w0.startApplier('n1', { verifier });
    await w0.received.waitFor(ackFor('n1', 1), 'ack 1');
    for (let i = 2; i <= 4; i++) {
      const before = verifier.calls;
      const mark = a.events.mark();
      await step(w0, m, { upsertServices: [service(i, 5)] });
      const ack = await w0.received.waitFor(ackFor('n1', i), `ack ${i}`);
      expect(dataHashOf(ack)).toBe(m.index.hash());
      const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === i, `session ack ${i}`, {
        from: mark,
      });
      expect(ev.type === 'ack' && ev.bytes).toBe(0); // the notice's delta: nothing fetched
      expect(verifier.calls - before).toBe(1);
    }
    expect(a.events.all.some((e) => e.type === 'rejected')).toBe(false);
  });

  it('a delta altered in transit under a genuine notice signature is dropped; the node runs what the stream holds', async () => {
    const { w, m, a } = await worldAtVersion1();
    const mark = a.events.mark();
    const v = m.next({ upsertServices: [service(2, 5)] });
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const genuine = w.publisher.storedDelta(2)!;
    const target = targetEntry(w, 2);
    const sig = w.signer.sign(targetNoticeStatement('default', target, genuine)!);
    const tampered = { ...genuine, payload: genuine.payload.replace('"10.1.2.3"', '"10.1.2.99"') };
    expect(tampered.payload).not.toBe(genuine.payload);
    await sendNotice(w, { target, delta: tampered, sig });
    const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    await a.events.waitFor((e) => e.type === 'rejected' && /bad notice signature/.test(e.reason), 'notice sig', {
      from: mark,
    });
    await a.events.waitFor((e) => e.type === 'rejected' && /notice delta: bad signature/.test(e.reason), 'delta', {
      from: mark,
    });
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', { from: mark });
    expect(ev.type === 'ack' && ev.bytes).toBeGreaterThan(0); // fetched from the stream
    expect(programs(a.dataplane.states, '10.1.2.3')).toBe(true);
    expect(programs(a.dataplane.states, '10.1.2.99')).toBe(false);
  });

  it('a target altered under a genuine notice signature is dropped (its own signature fails too)', async () => {
    const { w, m, a } = await worldAtVersion1();
    const v = m.next({ upsertServices: [service(2, 5)] });
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const genuine = w.publisher.storedDelta(2)!;
    const target = targetEntry(w, 2);
    const sig = w.signer.sign(targetNoticeStatement('default', target, genuine)!);
    const mark = a.events.mark();
    await sendNotice(w, { target: { ...target, version: 3 }, delta: genuine, sig });
    await a.events.waitFor((e) => e.type === 'rejected' && /bad signature target/.test(e.reason), 'target', {
      from: mark,
    });
    // The node says why it moves no more (probe3 U3: a planner key other than --planner-key looked healthy)
    const why = "dropping targets: bad signature (is --planner-key the planner's key?)";
    expect(a.session.status().lastError).toBe(why);
    const beat = w.received.mark();
    a.session.heartbeat();
    const hb = await w.received.waitFor((e) => e.kind === 'hb' && e.v.node === 'n1', 'heartbeat', { from: beat });
    expect(hb.kind === 'hb' && hb.v).toMatchObject({ healthy: false, detail: why });
    await sendNotice(w, { target, delta: genuine, sig });
    await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(a.session.status().lastError).toBe(''); // a genuine target passed
    expect(a.events.all.some((e) => e.type === 'target' && e.target.version === 3)).toBe(false);
  });
});

describe('unsigned: carried entry hashes are used only when the payload digest vouches for them', () => {
  it('an entry altered in transit fails the payload digest; the node runs what the stream holds', async () => {
    const { w, m, a } = await worldAtVersion1({ unsigned: true });
    const v = m.next({ upsertServices: [service(1, 5, 1)] }); // service 1's endpoints move to 10.2.1.x
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const genuine = w.publisher.storedDelta(2)!;
    expect(genuine.headers[H.payloadDigest]).toMatch(/^[0-9a-f]{64}$/);
    expect(genuine.payload).toContain('"entryHashes"');
    const tampered = { ...genuine, payload: genuine.payload.replace('"10.2.1.3"', '"10.2.1.99"') };
    expect(tampered.payload).not.toBe(genuine.payload);
    const mark = a.events.mark();
    await sendNotice(w, { target: targetEntry(w, 2, false), delta: tampered });
    const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    await a.events.waitFor(
      (e) => e.type === 'rejected' && /payload does not match its digest/.test(e.reason),
      'digest mismatch',
      { from: mark },
    );
    expect(programs(a.dataplane.states, '10.2.1.3')).toBe(true);
    expect(programs(a.dataplane.states, '10.2.1.99')).toBe(false);
  });

  it('without the digest, the carried hashes are ignored: the entries are hashed, the altered one fails, and the node recovers from the stream', async () => {
    const { w, m, a } = await worldAtVersion1({ unsigned: true });
    const v = m.next({ upsertServices: [service(1, 5, 1)] });
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const genuine = w.publisher.storedDelta(2)!;
    const { [H.payloadDigest]: _digest, ...headers } = genuine.headers;
    const tampered = { headers, payload: genuine.payload.replace('"10.2.1.3"', '"10.2.1.99"') };
    const mark = a.events.mark();
    await sendNotice(w, { target: targetEntry(w, 2, false), delta: tampered });
    // the altered copy fails its hash check; the node drops it and recovers from the stream's
    // (checkpoint path) instead of NACKing the version permanently
    const ack = await w.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    expect(a.events.all.slice(mark).some((e) => e.type === 'ack' && e.path === 'checkpoint')).toBe(true);
    expect(programs(a.dataplane.states, '10.2.1.99')).toBe(false);
  });
});

describe('rolling upgrades', () => {
  it('a current node follows a planner of the previous release (no notice signature, no carried hashes, no digest)', async () => {
    const w0 = await startBusWorld({ nodes: ['n1'] });
    world = w0;
    const verifier = counting(w0.verifier);
    const m = new VersionMaker();
    await step(w0, m, { upsertServices: [service(1, 5)], upsertNodes: [node('n1')] });
    const a = await w0.startApplier('n1', { verifier });
    await w0.received.waitFor(ackFor('n1', 1), 'ack 1');

    // version 2 exactly as the previous release published it: the artifact's JSON, these headers
    const v = m.next({ upsertServices: [service(2, 5)] });
    const text = JSON.stringify(v.delta);
    const payload = new TextEncoder().encode(text);
    const subject = deltaSubject(2);
    const headers: Record<string, string> = {
      [H.version]: '2',
      [H.parent]: '1',
      [H.form]: 'delta',
      [H.hash]: v.delta.hash,
      [H.checkpoint]: '1',
    };
    headers[H.sig] = w0.signer.sign(
      artifactStatement({ subject, version: 2, parent: 1, hash: v.delta.hash, anchor: '', payload }),
    );
    const h = natsHeaders();
    for (const [k, x] of Object.entries(headers)) h.set(k, x);
    await jetstream(w0.planner).publish(subject, payload, { headers: h });

    const before = verifier.calls;
    const mark = a.events.mark();
    await sendNotice(w0, { target: targetEntry(w0, 2), delta: { headers, payload: text } });
    const ack = await w0.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2', { from: mark });
    expect(ev.type === 'ack' && ev.bytes).toBe(0);
    expect(verifier.calls - before).toBe(2); // target and delta, each on its own signature
    expect(a.events.all.some((e) => e.type === 'rejected')).toBe(false);
  });

  it('a node of the previous release follows a current planner: its schemas drop the new fields, its checks pass', async () => {
    const w0 = await startBusWorld({ nodes: [] });
    world = w0;
    const notices: Uint8Array[] = [];
    const sub = w0.planner.subscribe('sb.target.default', {
      callback: (_e, msg) => {
        notices.push(msg.data);
      },
    });
    const m = new VersionMaker();
    await step(w0, m, { upsertServices: [service(1, 5)], upsertNodes: [node('n1')] });
    const v2 = await step(w0, m, { upsertServices: [service(2, 5)] });
    await w0.planner.flush();
    sub.unsubscribe();
    const raw = notices.at(-1)!;
    expect(JSON.parse(new TextDecoder().decode(raw)).sig).toBeTruthy(); // the new field is there...

    const n = previous.parseWire(previous.TargetNoticeSchema, raw, 'notice');
    if ('error' in n) throw new Error(n.error);
    expect('sig' in n.value).toBe(false); // ...and the previous release's schema drops it
    const t = n.value.target;
    if ('cleared' in t) throw new Error('cleared');
    // the checks that release made, with its statements: target and delta, each on its own signature
    expect(w0.verifier.verify(targetStatement('default', t, t.issued), t.sig)).toBe(true);
    const d = n.value.delta!;
    const payload = new TextEncoder().encode(d.payload);
    const statement = artifactStatement({
      subject: deltaSubject(2),
      version: 2,
      parent: Number(d.headers[H.parent]),
      hash: d.headers[H.hash]!,
      anchor: d.headers[H.anchor] ?? '',
      payload,
    });
    expect(w0.verifier.verify(statement, d.headers[H.sig]!)).toBe(true);
    const a = previous.parseWire(previous.VersionArtifactSchema, payload, 'artifact');
    if ('error' in a || a.value.form !== 'delta') throw new Error('not a delta');
    expect('entryHashes' in a.value).toBe(false);
    // it hashes every entry itself, and gets the published version hash
    const index = ClusterDataIndex.from({ services: [service(1, 5)], nodes: [node('n1')] });
    index.apply(a.value.delta as never);
    expect(index.hash()).toBe(v2.hash);
    expect(d.headers[H.hash]).toBe(v2.hash);
  });
});
