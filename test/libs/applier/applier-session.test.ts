import { afterEach, describe, expect, it } from 'vitest';
import { AckOrNackSchema, checkWire, DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { nextReconnect, startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

async function publish(w: BusWorld, m: VersionMaker, delta: Parameters<VersionMaker['next']>[0]) {
  const v = m.next(delta);
  await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  return v.delta;
}

type Received = BusWorld['received']['all'][number];
const ackFor = (n: string, version: number) => (e: Received) =>
  e.kind === 'ack' && e.v.node === n && e.v.version === version;
const dataHashOf = (e: Received) => (e.kind === 'ack' ? e.v.dataHash : '');

describe('ApplierSession against a real nats-server', () => {
  it('converges on its target, ACKs the hashes it programmed, and follows by deltas', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 5 });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1), service(2)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    const ack1 = await world.received.waitFor(ackFor('n1', 1), 'ack v1');
    const want = renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG);
    expect(ack1.v).toMatchObject({
      dataHash: m.index.hash(),
      nodeStateHash: nodeStateHash(want),
      mode: 'dry-run',
      configRevision: 0,
    });
    expect(a.dataplane.last).toEqual(want);
    await publish(world, m, { upsertServices: [service(2, 3, 7)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 2), 'ack v2');
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'session ack 2');
    expect(ev.type === 'ack' && ev.path).toBe('deltas');
    // The ACK as sent takes the planner's fast path: checked by hand and kept as parsed, no zod copy.
    const sent = JSON.parse(JSON.stringify(ev.type === 'ack' && ev.ack)) as unknown;
    expect((checkWire(AckOrNackSchema, sent, 'ack') as { value: unknown }).value).toBe(sent);
    // O(change): the bytes fetched for one changed service are far below a checkpoint's
    expect(ev.type === 'ack' && ev.bytes).toBeLessThan(JSON.stringify(m.index.toClusterData()).length);
    expect(a.dataplane.last).toEqual(renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG));
  });

  it('uses a per-node override over the default, and a published config revision', async () => {
    world = await startBusWorld({ nodes: ['n1', 'n2'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await publish(world, m, { upsertServices: [service(2)] });
    const config = { ...DEFAULT_PROXY_CONFIG, scheduler: 'wrr' };
    const { contentHash } = await import('../../../libs/model/index.ts');
    await world.targets.putConfigRevision({
      revision: 1,
      config,
      hash: contentHash(config),
      reason: 'wrr',
      createdAt: 'x',
    });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    await world.targets.setNodeTarget('n1', { version: 1, configRevision: 1 });
    const n1 = await world.startApplier('n1');
    const n2 = await world.startApplier('n2');
    await world.received.waitFor(
      (e) => e.kind === 'ack' && e.v.node === 'n1' && e.v.version === 1 && e.v.configRevision === 1,
      'n1 on override',
    );
    await world.received.waitFor(ackFor('n2', 2), 'n2 on default');
    expect(n1.dataplane.last!.virtualServers.every((v) => v.scheduler === 'wrr')).toBe(true);
    expect(n2.dataplane.last!.virtualServers.every((v) => v.scheduler === 'rr')).toBe(true);
    await world.targets.clearNodeTarget('n1');
    await world.received.waitFor(
      (e) => e.kind === 'ack' && e.v.node === 'n1' && e.v.version === 2 && e.v.configRevision === 0,
      'n1 back on default',
    );
    expect(await world.targets.getTargets()).toEqual({ default: { version: 2, configRevision: 0 }, nodes: new Map() });
  });

  it('a node far behind jumps to the newest checkpoint at or before its target', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 3 });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1', { maxDeltaChain: 2 });
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    for (let i = 2; i <= 8; i++) await publish(world, m, { upsertServices: [service(i)] });
    await world.targets.setDefaultTarget({ version: 8, configRevision: 0 });
    const ack = await world.received.waitFor(ackFor('n1', 8), 'ack 8');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 8, 'session ack 8');
    expect(ev.type === 'ack' && ev.path).toBe('checkpoint');
  });

  it('missing deltas make a node recover from a checkpoint', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 3 });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    // these notices carry no delta, so the node must read delta 3 from the stream (where it is gone)
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    await publish(world, m, { upsertServices: [service(3)] }); // v3: checkpoint + delta
    await publish(world, m, { upsertServices: [service(4)] });
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(world.planner);
    const d3 = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.delta.3' });
    expect(await jsm.streams.deleteMessage('SB_VERSIONS', d3!.seq)).toBe(true);
    await world.targets.setDefaultTarget({ version: 4, configRevision: 0 });
    const ack = await world.received.waitFor(ackFor('n1', 4), 'ack 4');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 4, 'session ack 4');
    expect(ev.type === 'ack' && ev.path).toBe('checkpoint');
  });

  it('a hash mismatch NACKs and keeps the programmed state', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 50 });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const before = a.dataplane.last;
    const v2 = m.next({ upsertServices: [service(2)] });
    await world.publisher.publishVersion({ ...v2.delta, hash: 'e'.repeat(64) }); // content and hash disagree
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const nack = await world.received.waitFor((e) => e.kind === 'nack', 'nack');
    expect(nack.v).toMatchObject({ node: 'n1', version: 2, lastGoodVersion: 1 });
    expect(nack.kind === 'nack' && nack.v.error).toMatch(/hash mismatch/);
    expect(a.dataplane.applies).toBe(1);
    expect(a.dataplane.last).toBe(before);
    expect(a.dataplane.cleanups).toBe(0);
    expect(a.session.status().applied?.version).toBe(1);
  });

  it('ignores duplicate deliveries: republished versions and re-set targets cause no second apply', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const d1 = await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    expect((await world.publisher.publishVersion(d1)).duplicate).toBe(true);
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 }); // same target, new KV revision
    await world.targets.setNodeTarget('n1', { version: 1, configRevision: 0 }); // same target via override
    const d2 = await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setNodeTarget('n1', { version: 2, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(d2.version).toBe(2);
    const acks = world.received.all.filter((e) => e.kind === 'ack').map((e) => e.v.version);
    expect(acks).toEqual([1, 2]);
    expect(a.dataplane.applies).toBe(2);
  });

  it('NATS restart mid-stream: the applier reconnects, catches up by deltas, converges', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 50 });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const back = [nextReconnect(a.nc), nextReconnect(world.planner)];
    await world.server.restart();
    await Promise.all(back);
    for (let i = 2; i <= 4; i++) await publish(world, m, { upsertServices: [service(i)] });
    await world.targets.setDefaultTarget({ version: 4, configRevision: 0 });
    const ack = await world.received.waitFor(ackFor('n1', 4), 'ack 4 after restart');
    expect(dataHashOf(ack)).toBe(m.index.hash());
    const ev = await a.events.waitFor((e) => e.type === 'ack' && e.ack.version === 4, 'session ack 4');
    expect(ev.type === 'ack' && ev.path).toBe('deltas');
  });

  it('fail-static: with the server gone the node keeps its state; back, it resumes without reprogramming', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const programmed = a.dataplane.last;
    const mark = a.events.mark();
    const back = [nextReconnect(a.nc), nextReconnect(world.planner)];
    await world.server.kill();
    await a.events.waitFor((e) => e.type === 'connection' && e.status === 'disconnect', 'disconnect', { from: mark });
    a.session.heartbeat(); // runs while disconnected: must not throw or drop state
    expect(a.dataplane.cleanups).toBe(0);
    expect(a.dataplane.last).toBe(programmed);
    await world.server.start();
    await Promise.all(back);
    await world.planner.flush(); // its re-subscriptions are on the server once the PONG is back
    a.session.heartbeat(); // the planner may have come back after the applier's own reconnect heartbeat
    await world.received.waitFor((e) => e.kind === 'hb' && e.v.appliedVersion === 1, 'heartbeat after reconnect');
    // the same target again after the restart: still one apply, no cleanup
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 2), 'ack 2');
    expect(a.dataplane.applies).toBe(2);
    expect(a.dataplane.cleanups).toBe(0);
  });

  it('a restarted applier applies once before it ACKs (the kernel is checked, not trusted), then skips unchanged states', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const first = await world.startApplier('n1');
    const ack = await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    await first.session.stop();
    const again = await world.startApplier('n1');
    const ev = await again.events.waitFor((e) => e.type === 'ack', 'ack after restart');
    expect(ev.type === 'ack' && ev.skipped).toBe(false);
    expect(again.dataplane.applies).toBe(1);
    expect(ev.type === 'ack' && ev.ack.nodeStateHash).toBe(ack.kind === 'ack' ? ack.v.nodeStateHash : '');
    // a version that leaves this node's state as it is: skipped against what this process verified
    await publish(world, m, { upsertNodes: [node('n2')] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const ev2 = await again.events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'ack 2');
    expect(ev2.type === 'ack' && ev2.skipped).toBe(true);
    expect(again.dataplane.applies).toBe(1);
  });

  it('a dataplane failure NACKs with the last good version, then retries', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    a.dataplane.failNext = 'EPERM';
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    const nack = await world.received.waitFor((e) => e.kind === 'nack', 'nack');
    expect(nack.v).toMatchObject({ version: 2, lastGoodVersion: 1, error: 'apply: EPERM' });
    await world.received.waitFor(ackFor('n1', 2), 'ack 2 on retry');
    // An error longer than the planner keeps (a huge kernel tool output) is cut, marked, before
    // sending: whole it would be over the planner's report size bound and refused, unseen.
    a.dataplane.failNext = 'x'.repeat(100_000);
    await publish(world, m, { upsertServices: [service(3)] });
    await world.targets.setDefaultTarget({ version: 3, configRevision: 0 });
    const long = await world.received.waitFor((e) => e.kind === 'nack' && e.v.version === 3, 'nack 3');
    expect(long.kind === 'nack' && long.v.error).toMatch(/^apply: x+… \[\d+ more characters\]$/);
    expect(long.kind === 'nack' && long.v.error.length).toBeLessThanOrEqual(2000);
  });

  it('corrupt target notices and live deltas are ignored: no crash, state kept, still converges', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const a = await world.startApplier('n1');
    await world.received.waitFor(ackFor('n1', 1), 'ack 1');
    const mark = a.events.mark();
    world.planner.publish('sb.target.default', 'not json');
    world.planner.publish(
      'sb.target.default',
      JSON.stringify({ revision: 'x', target: { version: 2, configRevision: 0 } }),
    );
    world.planner.publish('sb.target.node.n1', JSON.stringify({ revision: 1e6, target: { version: -4 } }));
    await world.planner.flush();
    await a.events.waitFor(
      (e) => e.type === 'rejected' && e.where === 'sb.target.node.n1',
      'malformed notice reported',
      { from: mark },
    );
    expect(a.dataplane.last).toBeDefined();
    expect(a.session.status().applied?.version).toBe(1);
    await publish(world, m, { upsertServices: [service(2)] });
    await world.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    await world.received.waitFor(ackFor('n1', 2), 'ack 2 after garbage');
    expect(a.dataplane.applies).toBe(2);
    expect(a.dataplane.cleanups).toBe(0);
    expect(world.received.all.some((e) => e.kind === 'nack')).toBe(false);
  });
});
