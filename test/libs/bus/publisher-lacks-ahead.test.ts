import { afterEach, describe, expect, it } from 'vitest';
import { DiscardPolicy, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, VERSIONS_STREAM, VersionPublisher } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { service, VersionMaker } from './fixtures.ts';

/**
 * A new leader's first look at what the versions stream lacks (VersionsStreamSync.repair) is
 * asked at its claim, while its source lists (NatsPlannerBus.claim → askLacksAhead), and taken
 * by lacks({ askedAhead: true }) instead of asking again. The answer is about the stream as this
 * publisher knew it then: a claim, a reopen (NATS lost its store, the stream was made again) or
 * an append of its own since makes it void, and the stream is asked again.
 */
let server: NatsServerHandle | undefined;
const conns: NatsConnection[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close().catch(() => undefined);
  await server?.stop();
  server = undefined;
});

async function world(): Promise<{ p: VersionPublisher; jsm: JetStreamManager; infos: () => Promise<number> }> {
  server = await startNatsServer({ jetstream: true });
  const nc = await connectBus({ servers: server.url, name: 'planner' });
  const observer = await connectBus({ servers: server.url, name: 'observer' });
  conns.push(nc, observer);
  // every stream-info request the publisher sends (the server delivers a request to each subscriber)
  let seen = 0;
  observer.subscribe(`$JS.API.STREAM.INFO.${VERSIONS_STREAM}`, { callback: () => void seen++ });
  // A marker the publisher's connection sends after its requests reaches the observer after them:
  // the server handles one connection's messages in order. (The observer's own flush did not
  // order them: once under load a request answered before the count reached the observer after it.)
  const marked: (() => void)[] = [];
  observer.subscribe('test.marker', { callback: () => marked.shift()?.() });
  await observer.flush();
  const p = await VersionPublisher.open({ nc, checkpointEvery: 2 });
  return {
    p,
    jsm: await jetstreamManager(nc),
    infos: async () => {
      const arrived = new Promise<void>((resolve) => marked.push(resolve));
      nc.publish('test.marker');
      await arrived;
      return seen;
    },
  };
}

const maker = () => {
  const m = new VersionMaker();
  return Array.from({ length: 3 }, (_, i) => m.next({ upsertServices: [service(i + 1)] }));
};

async function publish(p: VersionPublisher, made: ReturnType<typeof maker>): Promise<void> {
  for (const v of made) await p.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
}

/** What `nats stream edit --max-bytes 100 --discard old` does: every message dropped at once. */
async function dropEverything(jsm: JetStreamManager): Promise<void> {
  const info = await jsm.streams.info(VERSIONS_STREAM);
  await jsm.streams.update(VERSIONS_STREAM, { ...info.config, max_bytes: 100, discard: DiscardPolicy.Old });
  expect((await jsm.streams.info(VERSIONS_STREAM)).state.messages).toBe(0);
}

describe('what the versions stream lacks, asked ahead at a claim', () => {
  it('is taken as asked while nothing this publisher knows of the stream moved: no request of its own', async () => {
    const { p, jsm, infos } = await world();
    await publish(p, maker());
    await p.claim(1, 'a');
    // version 3's delta gone: what a node needs to load it is missing
    await jsm.streams.purge(VERSIONS_STREAM, { filter: 'sb.v.delta.3' });
    await p.askLacksAhead();
    const before = await infos();
    expect(await p.lacks({ askedAhead: true })).toBe('version 3 (what a node needs to load version 3)');
    expect(await infos()).toBe(before);
    // taken once: the next look asks the stream
    expect(await p.lacks({ askedAhead: true })).toBe('version 3 (what a node needs to load version 3)');
    expect(await infos()).toBeGreaterThan(before);
  });

  it('is void after a reopen: the stream was made again and lost what it held', async () => {
    const { p, jsm } = await world();
    const made = maker();
    await publish(p, made);
    await p.claim(1, 'a');
    await p.askLacksAhead();
    // NATS lost its store and the stream was made again (another planner published into it, and
    // a limit of its own dropped all of it): the answer asked before says nothing is missing
    await jsm.streams.delete(VERSIONS_STREAM);
    const other = await VersionPublisher.open({ nc: conns[0]!, checkpointEvery: 2 });
    await publish(other, made);
    await dropEverything(jsm);
    await p.reopen(); // what the planner bus does once it finds the stream made again (checkReset)
    expect(await p.lacks({ askedAhead: true })).toMatch(
      /^every version it held \(its messages before sequence \d+ are gone\)$/,
    );
  });

  it('is void after a claim, and after an append of its own', async () => {
    const { p, jsm } = await world();
    const made = maker();
    await publish(p, made);
    await p.claim(1, 'a');
    await p.askLacksAhead(); // nothing missing
    await dropEverything(jsm);
    await p.claim(2, 'a'); // a later term of the same planner (deposed, elected again)
    expect(await p.lacks({ askedAhead: true })).toMatch(/^every version it held/);

    // asked while version 3's delta is gone; the rebase (the repair) stores it again
    const q = await world2(made);
    await jsm.streams.purge(VERSIONS_STREAM, { filter: 'sb.v.delta.3' });
    await q.askLacksAhead();
    const v3 = made[2]!;
    await q.rebase({ header: v3.delta, data: () => v3.checkpoint().data });
    expect(await q.lacks({ askedAhead: true })).toBeUndefined();
  });
});

/** A publisher on a fresh stream holding `made`, claimed for term 1. */
async function world2(made: ReturnType<typeof maker>): Promise<VersionPublisher> {
  const jsm = await jetstreamManager(conns[0]!);
  await jsm.streams.delete(VERSIONS_STREAM);
  const q = await VersionPublisher.open({ nc: conns[0]!, checkpointEvery: 2 });
  await publish(q, made);
  await q.claim(1, 'b');
  return q;
}
