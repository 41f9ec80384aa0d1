import { afterEach, describe, expect, it } from 'vitest';
import type { SessionEvent } from '../../../libs/applier/index.ts';
import { DryRunDataplane, ResyncYielded, type ResyncOptions } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';
import { startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** How long a resync reads when nothing makes it give way: far longer than an ACK may take here. */
const SLOW_READ_MS = 4000;

/**
 * A dataplane whose resyncs take SLOW_READ_MS, as a whole read of a 10k table does, and give way
 * as the real ones do: when asked to (yieldTo fired) while reading, nothing written. It records
 * each call in order, applies and resyncs, and whether two ever overlapped.
 */
class SlowResyncDataplane extends DryRunDataplane {
  readonly calls: string[] = [];
  overlaps = 0;
  private busy = 0;
  private started: (() => void) | undefined;

  /** Resolves when the next resync starts reading. */
  nextResync(): Promise<void> {
    return new Promise((r) => (this.started = r));
  }

  override async apply(state: NodeState) {
    if (this.busy++ > 0) this.overlaps++;
    try {
      this.calls.push(`apply ${state.virtualServers.length}`); // version N holds N services
      return await super.apply(state);
    } finally {
      this.busy--;
    }
  }

  override async resync(options?: ResyncOptions) {
    if (this.busy++ > 0) this.overlaps++;
    const t0 = performance.now();
    try {
      const signal = options?.yieldTo;
      this.calls.push(signal ? 'resync (may give way)' : 'resync');
      this.started?.();
      this.started = undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, SLOW_READ_MS);
        signal?.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      });
      if (signal?.aborted) throw new ResyncYielded(performance.now() - t0);
      return { kernelWrites: 0, verified: true, durationMs: performance.now() - t0, notes: [] };
    } finally {
      this.busy--;
    }
  }
}

async function start() {
  world = await startBusWorld({ nodes: ['n1'] });
  const m = new VersionMaker();
  const w = world;
  const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
    const v = m.next(delta);
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await w.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
  };
  const dataplane = new SlowResyncDataplane();
  const { session, events } = await w.startApplier('n1', { dataplane });
  await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
  await w.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack v1');
  const ackOf = (version: number) =>
    w.received.waitFor((e) => e.kind === 'ack' && e.v.version === version, `ack v${version}`);
  return { session, events, dataplane, publish, ackOf };
}

const kinds = (events: readonly SessionEvent[]) =>
  events.filter((e) => e.type === 'resync' || e.type === 'resync-yielded' || e.type === 'ack').map((e) => e.type);

describe("ApplierSession's resync gives way to an arriving apply", () => {
  it('a periodic resync gives way once: the new version is applied at once, the resync runs again to its end, and an apply during that one waits', async () => {
    const { session, events, dataplane, publish, ackOf } = await start();
    const from = events.mark();
    const reading = dataplane.nextResync();
    session.requestResync();
    await reading;
    const retry = dataplane.nextResync(); // the retry may start before ack v2 is seen here
    const t0 = performance.now();
    await publish({ upsertServices: [service(2)] });
    await ackOf(2);
    // without giving way, v2 waited for the whole read
    expect(performance.now() - t0).toBeLessThan(SLOW_READ_MS / 2);
    const yielded = await events.waitFor((e) => e.type === 'resync-yielded', 'the resync giving way', { from });
    expect(yielded).toMatchObject({ trigger: 'periodic' });

    // the retry cannot give way: v3, arriving while it reads, waits for its end
    await retry;
    await publish({ upsertServices: [service(3)] });
    await ackOf(3);
    const done = await events.waitFor((e) => e.type === 'resync', 'the retried resync', { from });
    expect(done).toMatchObject({ trigger: 'periodic', verified: true, kernelWrites: 0 });
    expect(kinds(events.all.slice(from))).toEqual(['resync-yielded', 'ack', 'resync', 'ack']);
    expect(dataplane.calls.slice(-4)).toEqual(['resync (may give way)', 'apply 2', 'resync', 'apply 3']);
    expect(dataplane.overlaps).toBe(0);

    // a later periodic resync may give way again
    const again = dataplane.nextResync();
    session.requestResync();
    await again;
    await publish({ upsertServices: [service(4)] });
    await ackOf(4);
    await events.waitFor((e) => e.type === 'resync', 'the next resync, after giving way', {
      from: events.all.indexOf(done) + 1,
    });
    expect(dataplane.calls.slice(-3)).toEqual(['resync (may give way)', 'apply 4', 'resync']);
  });

  it('a resync asked for by a drift signal never gives way: its repair goes before the new version', async () => {
    const { session, events, dataplane, publish, ackOf } = await start();
    const from = events.mark();
    const reading = dataplane.nextResync();
    session.driftSignalled('table switchboard deleted');
    await reading;
    await publish({ upsertServices: [service(2)] });
    await ackOf(2);
    expect(kinds(events.all.slice(from))).toEqual(['resync', 'ack']);
    expect(dataplane.calls.slice(-2)).toEqual(['resync', 'apply 2']);
    expect(dataplane.overlaps).toBe(0);
  });
});
