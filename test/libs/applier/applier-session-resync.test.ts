import { afterEach, describe, expect, it } from 'vitest';
import { DryRunDataplane, type ApplyResult } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';
import { startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/**
 * A dataplane whose resyncs answer from a script (drift repaired, a failure, clean) and which
 * records whether a resync ever ran beside an apply.
 */
class ScriptedResyncDataplane extends DryRunDataplane {
  readonly script: (() => ApplyResult)[] = [];
  resyncs = 0;
  overlaps = 0;
  private busy = 0;

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy++ > 0) this.overlaps++;
    try {
      await new Promise((r) => setTimeout(r, 30)); // long enough for a timer to fire meanwhile
      return await fn();
    } finally {
      this.busy--;
    }
  }

  override apply(state: NodeState) {
    return this.exclusive(() => super.apply(state));
  }

  override resync() {
    return this.exclusive(async () => {
      this.resyncs++;
      const next = this.script.shift();
      return next ? next() : super.resync();
    });
  }
}

const result = (kernelWrites: number, verified = true): ApplyResult => ({
  kernelWrites,
  verified,
  durationMs: 1,
  notes: [kernelWrites ? `repaired ${kernelWrites}` : 'clean'],
});

describe("ApplierSession's periodic resync", () => {
  it('resyncs what it applied on a timer, never beside an apply; a failed resync makes the node unhealthy until one succeeds', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
      const v = m.next(delta);
      await world!.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      await world!.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
    };
    const dataplane = new ScriptedResyncDataplane();
    dataplane.script.push(
      () => result(2),
      () => {
        throw new Error('netlink: EPERM');
      },
      () => result(0),
    );
    const { session, events } = await world.startApplier('n1', { dataplane, resyncIntervalMs: 50 });
    await new Promise((r) => setTimeout(r, 200));
    expect(dataplane.resyncs).toBe(0); // nothing applied yet: nothing to compare
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack v1');

    const repaired = await events.waitFor((e) => e.type === 'resync' && e.kernelWrites === 2, 'a repairing resync');
    expect(repaired).toMatchObject({ verified: true, notes: ['repaired 2'] });
    const failed = await events.waitFor((e) => e.type === 'resync' && e.error !== undefined, 'a failed resync');
    expect(failed).toMatchObject({ error: 'netlink: EPERM', verified: false });
    session.heartbeat();
    const sick = await world.received.waitFor((e) => e.kind === 'hb' && !e.v.healthy, 'an unhealthy heartbeat');
    expect(sick.v).toMatchObject({ healthy: false, detail: 'resync: netlink: EPERM', appliedVersion: 1 });
    await events.waitFor((e) => e.type === 'resync' && e.error === undefined && e.kernelWrites === 0, 'a clean resync');
    await world.received.waitFor((e) => e.kind === 'hb' && e.v.healthy && e.v.detail === '', 'healthy again');

    // applies keep coming while the timer fires: the two never overlap
    for (let i = 2; i <= 6; i++) {
      await publish({ upsertServices: [service(i)] });
      await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === i, `ack v${i}`);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(dataplane.resyncs).toBeGreaterThan(5);
    expect(dataplane.overlaps).toBe(0);
  });

  it('an ACK sent while a failed resync is unrepaired says the node is unhealthy; reports carry the session instance', async () => {
    world = await startBusWorld({ nodes: ['n1', 'n2'] });
    const m = new VersionMaker();
    const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
      const v = m.next(delta);
      await world!.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      await world!.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
    };
    const dataplane = new ScriptedResyncDataplane();
    for (let i = 0; i < 10_000; i++)
      dataplane.script.push(() => {
        throw new Error('netlink: EPERM');
      });
    const { session, events } = await world.startApplier('n1', { dataplane, resyncIntervalMs: 50 });
    await world.startApplier('n2', { dataplane: new DryRunDataplane() });
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1'), node('n2')] });
    const ack1 = await world.received.waitFor(
      (e) => e.kind === 'ack' && e.v.node === 'n1' && e.v.version === 1,
      'ack v1',
    );
    expect(ack1.v).not.toHaveProperty('healthy'); // nothing failed yet: the field is absent
    await events.waitFor((e) => e.type === 'resync' && e.error !== undefined, 'a failed resync');
    await publish({ upsertServices: [service(2)] });
    const ack2 = await world.received.waitFor(
      (e) => e.kind === 'ack' && e.v.node === 'n1' && e.v.version === 2,
      'ack v2',
    );
    expect(ack2.v).toMatchObject({ type: 'ACK', healthy: false, detail: 'resync: netlink: EPERM' });
    session.heartbeat();
    const hb = await world.received.waitFor((e) => e.kind === 'hb' && e.v.node === 'n1', 'a heartbeat');
    const other = await world.received.waitFor(
      (e) => e.kind === 'ack' && e.v.node === 'n2' && e.v.version === 2,
      'n2 ack v2',
    );
    expect(ack2.v.instance).toMatch(/^[0-9a-f]{16}$/);
    expect([ack1.v.instance, hb.v.instance]).toEqual([ack2.v.instance, ack2.v.instance]);
    expect(other.v.instance).toMatch(/^[0-9a-f]{16}$/);
    expect(other.v.instance).not.toBe(ack2.v.instance);
  });
});
