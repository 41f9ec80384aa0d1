import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, TargetStore } from '../../../libs/bus/index.ts';
import { PLANNER, startBusWorld, type BusWorld } from './bus-harness.ts';

// probe9 K1: the sb_targets key of a Node deleted from the cluster (`node.<token>`, an override,
// then its signed `cleared` entry) stayed in the bucket for good; a cluster whose node names churn
// grew it without bound. The planner now removes the keys of nodes that are gone.

let world: BusWorld | undefined;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await world?.close();
  world = undefined;
});

/** The bucket's `node.` subjects that still hold a message, from the stream itself. */
async function nodeSubjects(): Promise<string[]> {
  const jsm = await jetstreamManager(world!.planner);
  const info = await jsm.streams.info('KV_sb_targets', { subjects_filter: '$KV.sb_targets.node.>' });
  return Object.keys(info.state.subjects ?? {})
    .map((s) => s.slice('$KV.sb_targets.'.length))
    .sort();
}

const target = (version: number) => ({ version, configRevision: 0 });

describe('the targets bucket forgets the nodes that are gone (probe9 K1)', () => {
  it('removes the keys of nodes not kept, whole, and keeps those of nodes that exist; a newer write and a node back survive', async () => {
    world = await startBusWorld({ nodes: [] });
    const a = world.targets;
    await a.setDefaultTarget(target(1));
    for (const v of [1, 2, 3]) await a.setNodeTarget('n1', target(v));
    await a.setNodeTarget('n2', target(1));
    await a.clearNodeTarget('n2'); // its rollout ended: a signed `cleared` entry stays...
    await a.setNodeTarget('n3.x', target(2));
    await a.setNodeTarget('n4', target(2));
    expect(await nodeSubjects()).toEqual(['node.n1', 'node.n2', 'node.n3_x', 'node.n4']);

    // ...until the Node is gone: n2 and n4 were deleted from the cluster
    expect((await a.removeNodeTargets(['n1', 'n3.x'])).sort()).toEqual(['node.n2', 'node.n4']);
    expect(await nodeSubjects()).toEqual(['node.n1', 'node.n3_x']);
    const t = await a.getTargets();
    expect(t.nodes).toEqual(
      new Map([
        ['n1', target(3)],
        ['n3_x', target(2)],
      ]),
    );
    expect(t.default).toEqual(target(1));
    expect(await a.removeNodeTargets(['n1', 'n3.x'])).toEqual([]); // nothing more

    // a node of that name back: its key is written afresh
    await a.setNodeTarget('n2', target(4));
    expect((await a.getTargets()).nodes.get('n2')).toEqual(target(4));

    // another planner (a restart, a new leader) learns the bucket's keys when it opens, so keys
    // of nodes deleted while no planner ran go too
    const nc = await connectBus({ servers: world.server.url, name: 'next', auth: PLANNER });
    closers.push(() => nc.close());
    const b = await TargetStore.open({ nc, signer: world.signer });
    // a write newer than the revision a store knows is not removed by it
    await b.setNodeTarget('n1', target(5));
    expect((await a.removeNodeTargets(['n3.x'])).sort()).toEqual(['node.n1', 'node.n2']);
    expect((await b.getTargets()).nodes.get('n1')).toEqual(target(5));
    expect(await nodeSubjects()).toEqual(['node.n1', 'node.n3_x']);
    expect((await b.removeNodeTargets(['n3.x'])).sort()).toEqual(['node.n1', 'node.n2']);
    expect(await nodeSubjects()).toEqual(['node.n3_x']);
  });
});
