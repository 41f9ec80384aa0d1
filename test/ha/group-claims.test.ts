import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBus, LeaderLease, StaleLeaderError, VersionPublisher } from '../../libs/bus/index.ts';
import { PLANNER, startBusWorld, type BusWorld } from '../libs/bus/bus-harness.ts';
import { service, VersionMaker } from '../libs/bus/fixtures.ts';

/**
 * Term claims on the shared versions stream count only for the claimer's own group (probe5 H5).
 * Terms are revisions of each group's own lease bucket, so a planner of another --group on the
 * same NATS (with the same key: nothing else tells them apart) claimed the stream in a term that
 * was "newer" only by accident, and fenced this group's leader. Claims now name their group,
 * signed; the release before's form (no group) still fences while no other group's lease bucket
 * is on the account, so a rolling upgrade keeps fencing.
 */
let world: BusWorld | undefined;
/** What a test opened beside the world's own clients: closed before the world. */
const opened: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.close().catch(() => undefined)));
  await world?.close();
  world = undefined;
});

async function publisherOf(group: string | undefined, foreign: string[] = []): Promise<VersionPublisher> {
  const nc = await connectBus({ servers: world!.server.url, name: `planner-${group}`, auth: PLANNER });
  opened.push(nc);
  return VersionPublisher.open({ nc, signer: world!.signer, group, onForeign: (_s, why) => foreign.push(why) });
}

/** A group's lease bucket, as its planners open it before they contend. */
async function leaseBucketOf(group: string): Promise<void> {
  const lease = await LeaderLease.open({ nc: world!.planner, group, id: `${group}-1`, ttlMs: 2000 });
  opened.push(lease);
}

describe('term claims of planner groups sharing a NATS account', () => {
  it("another group's claim, signed with the same key, does not fence this group's leader", async () => {
    world = await startBusWorld({ nodes: [] });
    await leaseBucketOf('a');
    await leaseBucketOf('b');
    const m = new VersionMaker();
    const publish = (p: VersionPublisher) => {
      const v = m.next({ upsertServices: [service(m.version + 1)] });
      return p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    };
    const foreign: string[] = [];
    const a = await publisherOf('a', foreign);
    await a.claim(3, 'a-1');
    await publish(a);
    // group b's leader claims in its own term 7 (its bucket's revision: higher only by accident)
    const b = await publisherOf('b');
    await b.claim(7, 'b-1');
    // ...and the same claim with its group edited to a's: the group is signed, so it is no claim of a's
    const jsm = await jetstreamManager(world.planner);
    const stored = await jsm.streams.getMessage('SB_VERSIONS', { last_by_subj: 'sb.v.term' });
    const body = JSON.parse(new TextDecoder().decode(stored!.data)) as Record<string, unknown>;
    expect(body).toMatchObject({ term: 7, id: 'b-1', group: 'b' });
    world.planner.publish('sb.v.term', JSON.stringify({ ...body, group: 'a' }));
    await world.planner.flush();

    await expect(publish(a)).resolves.toMatchObject([{ version: 2 }]);
    expect(a.lastPublishedVersion()).toBe(2);
    expect(foreign).toEqual([
      'a term claim of another group (b, term 7)',
      "a term claim for term 7 not signed by the group's key",
    ]);
    // a's own next leader still fences it
    const a2 = await publisherOf('a');
    await a2.claim(9, 'a-2');
    const fenced = await publish(a).catch((e: unknown) => e);
    expect(fenced).toBeInstanceOf(StaleLeaderError);
    expect((fenced as Error).message).toMatch(/claimed by planner a-2 in term 9 of group a \(/);
  });

  it("a claim in the release before's form (no group) fences while no other group's lease is on the account", async () => {
    world = await startBusWorld({ nodes: [] });
    await leaseBucketOf('a');
    const m = new VersionMaker();
    const publish = (p: VersionPublisher, v = m.next({ upsertServices: [service(m.version + 1)] })) =>
      p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    const a = await publisherOf('a');
    await a.claim(3, 'a-1');
    await publish(a);
    // a planner of the release before (it writes no group) wins group a's lease mid-upgrade
    const before = world.publisher;
    await before.claim(5, 'a-old');
    const v2 = m.next({ upsertServices: [service(2)] });
    await expect(publish(a, v2)).rejects.toThrow(/claimed by planner a-old in term 5 \(/);

    // Once another group's lease bucket is on the account, such a claim may be that group's: stepped over.
    const foreign: string[] = [];
    const a2 = await publisherOf('a', foreign);
    await a2.claim(9, 'a-2');
    await leaseBucketOf('b');
    await before.claim(12, 'b-old');
    await expect(publish(a2, v2)).resolves.toMatchObject([{ version: 2 }]);
    expect(foreign).toEqual([
      "a term claim naming no group (term 12, the release before's form) while this NATS account also holds the leases of b: it may be theirs",
    ]);
  });
});
