import { afterEach, describe, expect, it } from 'vitest';
import type { HealthProbe, ProbeOutcome } from '../../../libs/applier/index.ts';
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

/** A probe whose answer the test sets: every sampled virtual server answers, or fails while its endpoint answers directly. */
class SwitchedProbe implements HealthProbe {
  failing = false;
  async probe(): Promise<ProbeOutcome> {
    const f = this.failing;
    return {
      kind: 'report',
      report: {
        attempted: 1,
        succeeded: f ? 0 : 1,
        failed: f ? 1 : 0,
        unreachable: 0,
        latencyMs: f ? null : { p50: 1, max: 1 },
        failures: f
          ? [{ target: 'tcp/10.96.0.1:80', error: 'ECONNREFUSED (endpoint 10.0.0.1:8080 answers directly)' }]
          : [],
        at: new Date().toISOString(),
      },
    };
  }
}

describe('ApplierSession: a dataplane that looks broken (probe7 C1)', () => {
  const start = async (dataplane: ScriptedResyncDataplane, probe: HealthProbe) => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    // no periodic resync: whatever resyncs here was triggered
    const started = await world.startApplier('n1', { dataplane, probe, probeIntervalMs: 40, resyncIntervalMs: 0 });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
    await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack v1');
    return started;
  };

  it('a re-probe that blames the dataplane resyncs at once, once per fault, and re-probes after it', async () => {
    const dataplane = new ScriptedResyncDataplane();
    dataplane.script.push(() => result(3)); // the first finds the table gone and reloads it; later ones find nothing
    const probe = new SwitchedProbe();
    const { events } = await start(dataplane, probe);
    expect(dataplane.resyncs).toBe(0);
    probe.failing = true;
    const repaired = await events.waitFor((e) => e.type === 'resync' && e.kernelWrites === 3, 'the triggered resync');
    expect(repaired).toMatchObject({
      trigger:
        'probe: probe: 1 of 1 virtual server(s) failed through the dataplane: tcp/10.96.0.1:80: ECONNREFUSED (endpoint 10.0.0.1:8080 answers directly)',
    });
    // It repaired something, so the re-probe right after it (still failing) may ask once more; that
    // one repairs nothing: the fault is not ours, and the re-probes every 40 ms ask no further.
    await events.waitFor((e) => e.type === 'resync' && e.kernelWrites === 0, 'the second triggered resync');
    await new Promise((r) => setTimeout(r, 400)); // ten re-probe intervals
    expect(dataplane.resyncs).toBe(2);
    // A passing probe ends the fault; the next failure is a new one and resyncs again.
    probe.failing = false;
    const from = events.mark();
    await events.waitFor((e) => e.type === 'verdict' && e.verdict.verdict === 'healthy', 'healthy again', { from });
    probe.failing = true;
    await events.waitFor((e) => e.type === 'resync' && e.trigger.startsWith('probe: '), 'a resync for the new fault', {
      from,
    });
    expect(dataplane.resyncs).toBe(3);
    expect(dataplane.overlaps).toBe(0);
  });

  it("a drift signal resyncs at once; the re-probe's stateVerified is what the newest read-back found", async () => {
    const dataplane = new ScriptedResyncDataplane();
    dataplane.script.push(() => {
      throw new Error('netlink: EPERM');
    });
    const probe = new SwitchedProbe();
    const { session, events } = await start(dataplane, probe);
    session.driftSignalled('table switchboard deleted');
    const failed = await events.waitFor((e) => e.type === 'resync', 'the signalled resync');
    expect(failed).toMatchObject({ trigger: 'drift signal: table switchboard deleted', error: 'netlink: EPERM' });
    // the probe passes, but the kernel was not read back right: before, every re-probe said stateVerified: true
    const from = events.mark();
    const v = await events.waitFor((e) => e.type === 'verdict', 'the next verdict', { from });
    expect(v).toMatchObject({
      verdict: { verdict: 'unhealthy', stateVerified: false, reason: 'resync: netlink: EPERM' },
    });
    session.requestResync();
    const clean = await events.waitFor((e) => e.type === 'resync' && e.error === undefined, 'a clean resync');
    const after = events.all.indexOf(clean);
    const ok = await events.waitFor((e) => e.type === 'verdict', 'a verdict after it', { from: after });
    expect(ok).toMatchObject({ verdict: { verdict: 'healthy', stateVerified: true } });
  });
});
