import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { VersionPublisher, VersionReader } from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { renderNodeState } from '../../../libs/planner/index.ts';
import { ackForHelper } from './publisher-helpers.ts';
import { startBusWorld, type BusWorld } from './bus-harness.ts';
import { node, service, VersionMaker } from './fixtures.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/**
 * probe13 R3: the checkpoints a publisher stored (and the sequence it purged below) belong to one
 * stream. Once the stream is made again (NATS lost its store, or SB_VERSIONS deleted by hand) a
 * publisher that kept them trimmed the NEW stream below an old stream's sequence while it
 * republished: the only checkpoint went, and a node that restarts or joins could load nothing.
 */
describe('VersionPublisher after its stream is made again', () => {
  it('forgets the old stream’s checkpoints: the republished checkpoint stays and a new node loads it', async () => {
    world = await startBusWorld({ nodes: ['n1'], checkpointEvery: 50 });
    const p = await VersionPublisher.open({
      nc: world.planner,
      checkpointEvery: 3,
      keepCheckpoints: 2,
      signer: world.signer,
    });
    const m = new VersionMaker();
    const made = [];
    for (let i = 1; i <= 7; i++) {
      const v = m.next({ upsertServices: [service(i)], upsertNodes: i === 1 ? [node('n1')] : [] });
      made.push(v);
      await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    }
    // checkpoints at 1, 3, 6 in the first stream (sequences well above the new stream's first ones)
    const jsm = await jetstreamManager(world.planner);
    await jsm.streams.delete('SB_VERSIONS');
    await p.reopen(); // what the planner bus does once it finds the stream gone (checkReset)
    expect(p.lastPublishedVersion()).toBe(0);
    // the republish of 1..4 (checkpoints 1 and 3) into the new stream
    for (const v of made.slice(0, 4))
      await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const info = await jsm.streams.info('SB_VERSIONS');
    expect(info.state.first_seq).toBe(1);
    const reader = new VersionReader(world.planner, { verifier: world.verifier });
    expect((await reader.checkpoint(1)).ok).toBe(true);
    const d4 = await reader.delta(4);
    expect(d4.ok && d4.baseCheckpoint).toBe(3);
    // a node that never ran anything (restarted, re-imaged) loads checkpoint 3 and delta 4
    await world.targets.setDefaultTarget({ version: 4, configRevision: 0 });
    const a = await world.startApplier('n1');
    const ack = await world.received.waitFor(ackForHelper('n1', 4), 'ack 4');
    expect(ack.kind === 'ack' && ack.v.dataHash).toBe(made[3]!.delta.hash);
    const atFour = new VersionMaker();
    for (let i = 1; i <= 4; i++)
      atFour.next({ upsertServices: [service(i)], upsertNodes: i === 1 ? [node('n1')] : [] });
    expect(a.dataplane.last).toEqual(renderNodeState(atFour.index, 'n1', DEFAULT_PROXY_CONFIG));
  });
});
