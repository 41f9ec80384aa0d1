// probe10 H1, the planner's side: someone with the planner's NATS credentials (not its signing
// key) copies an old signed target from the key's KV history back into the key. The planner never
// noticed (nodes STALE for ever, running the old version after a restart). Now its bus compares
// the keys it wrote with what it put and puts its own entry back, telling the planner once per
// incident; a newer leader's entry (newer `issued`, signed with the planner key) is left alone.
// A real nats-server with the generated permissions.
import { afterEach, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  DEFAULT_TARGET_KEY,
  nodeTargetKey,
  TARGETS_BUCKET,
  TARGETS_STREAM,
  TargetStore,
} from '../../../libs/bus/index.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Events, startBusWorld, type BusWorld } from '../../libs/bus/bus-harness.ts';

let world: BusWorld | undefined;
let bus: NatsPlannerBus | undefined;
afterEach(async () => {
  await bus?.close();
  bus = undefined;
  await world?.close();
  world = undefined;
});

/** A bus world with one node and the planner's bus checking its target keys every 50 ms. */
async function checkingBus() {
  const w = await startBusWorld({ nodes: ['n1'] });
  world = w;
  const restored = new Events<{ key: string; revision: number }>();
  const b = await NatsPlannerBus.open({
    nc: w.planner,
    signer: w.signer,
    targetCheckMs: 50,
    onTargetRestored: (key, revision) => restored.push({ key, revision }),
  });
  bus = b;
  return { w, bus: b, restored, kv: await new Kvm(w.planner).open(TARGETS_BUCKET) };
}

describe('the planner restores a target key someone else wrote (probe10 H1)', () => {
  it('puts its own entry back over a replayed old one, and leaves a newer leader’s alone', async () => {
    const { w, bus, restored, kv } = await checkingBus();
    const nodeKey = nodeTargetKey('n1');
    await bus.setDefaultTarget({ version: 1, configRevision: 0 });
    const old = (await kv.get(DEFAULT_TARGET_KEY))!.string();
    await bus.setDefaultTarget({ version: 2, configRevision: 0 });
    await bus.setNodeTarget('n1', { version: 2, configRevision: 0 });
    const ours = (await kv.get(DEFAULT_TARGET_KEY))!.string();

    const foreign = await kv.put(DEFAULT_TARGET_KEY, old); // the replay, verbatim
    const r = await restored.waitFor((e) => e.key === DEFAULT_TARGET_KEY, 'the default restored');
    expect(r.revision).toBe(foreign);
    const back = await kv.get(DEFAULT_TARGET_KEY);
    expect(back!.string()).toBe(ours);
    expect(back!.revision).toBeGreaterThan(foreign);

    // the planner can still write there (its store follows the revision it restored at)
    await bus.setDefaultTarget({ version: 3, configRevision: 0 });
    expect(JSON.parse((await kv.get(DEFAULT_TARGET_KEY))!.string()).version).toBe(3);

    // a newer leader (a store of its own, the same key) writes: not undone
    const leader = await TargetStore.open({ nc: w.planner, signer: w.signer });
    await leader.setDefaultTarget({ version: 4, configRevision: 0 });
    const mark = restored.mark();
    await kv.put(nodeKey, 'not a target');
    await restored.waitFor((e) => e.key === nodeKey, 'the node key restored', { from: mark });
    expect(restored.all.slice(mark).map((e) => e.key)).toEqual([nodeKey]); // the default was checked in the same pass
    expect(JSON.parse((await kv.get(DEFAULT_TARGET_KEY))!.string()).version).toBe(4);
    expect(JSON.parse((await kv.get(nodeKey))!.string()).version).toBe(2);
  });

  it('puts back keys purged with the default (a purge of the whole bucket), not a node key purged alone (what removeNodeTargets does)', async () => {
    const { w, bus, restored, kv } = await checkingBus();
    const jsm = await jetstreamManager(w.planner);
    const nodeKey = nodeTargetKey('n1');
    await bus.setDefaultTarget({ version: 1, configRevision: 0 });
    await bus.setNodeTarget('n1', { version: 2, configRevision: 0 });
    const ours = { default: (await kv.get(DEFAULT_TARGET_KEY))!.string(), node: (await kv.get(nodeKey))!.string() };

    // the node key alone: a leader removing a gone Node's key leaves it so; not undone
    await jsm.streams.purge(TARGETS_STREAM, { filter: `$KV.${TARGETS_BUCKET}.${nodeKey}` });
    await new Promise((res) => setTimeout(res, 500)); // ten checks
    expect(await kv.get(nodeKey)).toBeNull();
    expect(restored.all).toEqual([]);

    // everything (`nats stream purge KV_sb_targets`): the default gone says it was not a planner,
    // so the node key, purged before, is put back with it
    await jsm.streams.purge(TARGETS_STREAM);
    await restored.waitFor((e) => e.key === nodeKey, 'the node key restored');
    expect(restored.all).toEqual([
      { key: DEFAULT_TARGET_KEY, revision: 0 },
      { key: nodeKey, revision: 0 },
    ]);
    expect((await kv.get(DEFAULT_TARGET_KEY))!.string()).toBe(ours.default);
    expect((await kv.get(nodeKey))!.string()).toBe(ours.node);
    // and the store writes on from the revisions it put back (no false fence, no step-down)
    await bus.setDefaultTarget({ version: 3, configRevision: 0 });
    expect(JSON.parse((await kv.get(DEFAULT_TARGET_KEY))!.string()).version).toBe(3);
  });
});
