import { afterEach, describe, expect, it } from 'vitest';
import { DryRunDataplane, type NodeStateChange } from '../../../libs/dataplane/index.ts';
import { virtualServerKey, type NodeState } from '../../../libs/model/index.ts';
import { startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Records what the session hands to `apply`: each state with the change it came with. */
class ChangeRecordingDataplane extends DryRunDataplane {
  readonly calls: { state: NodeState; change: NodeStateChange | undefined }[] = [];

  override async apply(state: NodeState, change?: NodeStateChange) {
    this.calls.push({ state, change });
    return super.apply(state);
  }
}

describe("ApplierSession's apply call", () => {
  it("hands the dataplane the renderer's change from the state it applied before", async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 5 });
    const m = new VersionMaker();
    const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
      const v = m.next(delta);
      await world!.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      await world!.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
    };
    const dataplane = new ChangeRecordingDataplane();
    await world.startApplier('n1', { dataplane });
    const acked = (version: number) =>
      world!.received.waitFor((e) => e.kind === 'ack' && e.v.version === version, `ack v${version}`);
    await publish({ upsertServices: [service(1), service(2), service(3)], upsertNodes: [node('n1')] });
    await acked(1);
    await publish({ upsertServices: [service(2, 3, 7)] });
    await acked(2);
    expect(dataplane.calls).toHaveLength(2);
    const [first, second] = dataplane.calls;
    expect(first!.change).toBeUndefined(); // everything was rendered: no change to hand
    const change = second!.change!;
    expect(change.previous).toBe(first!.state);
    expect(change.removedVirtualServers).toEqual([]);
    // exactly the services whose object differs between the two states: service 2's
    const before = new Map(first!.state.virtualServers.map((v) => [virtualServerKey(v), v]));
    const replaced = second!.state.virtualServers.filter((v) => before.get(virtualServerKey(v)) !== v);
    expect(replaced.map((v) => v.servicePort)).toEqual(['ns/svc-2:http']);
    expect(change.virtualServers).toEqual(replaced);
    for (const v of change.virtualServers) expect(second!.state.virtualServers).toContain(v);
  });
});
