// Runs inside a netns (TestNetns.run): a whole-table nftables read asked to give way (a resync
// yielding to an arriving apply) stops early, leaves the runner and its dump thread fit for the
// next read, and a resync that gave way wrote nothing.
import { execFileSync } from 'node:child_process';
import type { Worker } from 'node:worker_threads';
import {
  NftablesDataplane,
  NftDumpThread,
  NftNetlinkRunner,
  planFullLoad,
  renderNftObjects,
  ResyncYielded,
} from '../../../libs/dataplane/index.ts';
import type { TableRef } from '../../../libs/netlink/index.ts';
import { startModuleWorker } from '../../../libs/threads/index.ts';
import { inventoryText } from './nft-backend-scenarios.ts';
import { nodeState } from './node-state-builder.ts';

const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });

const stateOf = (services: number) =>
  nodeState(
    Array.from({ length: services }, (_, i) => ({
      servicePort: `ns/svc${i}:p`,
      address: `10.96.${i >> 8}.${i & 255}`,
      port: 80,
      endpoints: Array.from({ length: 1 + (i % 3) }, (_, e) => `10.${64 + e}.${i >> 8}.${i & 255}:8080`),
    })),
  );

/** The real dump thread, counting the workers it starts and the sets its worker hands over. */
class CountedDumpThread extends NftDumpThread {
  workers = 0;
  handed = 0;
  onChunk: (() => void) | undefined;
  constructor() {
    super((): Worker => {
      this.workers++;
      return startModuleWorker(
        new URL('../../../libs/dataplane/nftables/nft-dump-thread.ts', import.meta.url).href,
        'nft-dump-worker',
      );
    });
  }
  override dump(
    table: TableRef,
    sets: readonly string[],
    onChunk: Parameters<NftDumpThread['dump']>[2],
    signal?: AbortSignal,
  ) {
    return super.dump(
      table,
      sets,
      (from, payloads) => {
        this.handed += payloads.length;
        onChunk(from, payloads);
        this.onChunk?.();
      },
      signal,
    );
  }
}

/**
 * A runner's whole read (its worker started by a read before), aborted once its dump thread
 * handed over a first chunk; one with the signal fired before it starts; then the same runner's
 * next read; against a read with every dump in the calling thread.
 */
export async function readGivingWay(services: number) {
  const table = 'giveway';
  const loader = new NftNetlinkRunner({ dumpThread: false });
  await loader.run(planFullLoad(renderNftObjects(stateOf(services)), table));
  const reference = inventoryText(await loader.listTable('inet', table));
  const referenceDumps = loader.lastRead?.dumps ?? 0;
  loader.close();

  const thread = new CountedDumpThread();
  const runner = new NftNetlinkRunner({ dumpThread: thread, dumpThreadMinSets: 1 });
  try {
    // a first whole read starts the worker (its start, ~0.3 s under tsx, is not what is measured)
    let datagrams = runner.received.datagrams;
    const warm = inventoryText(await runner.listTable('inet', table));
    const wholeDatagrams = runner.received.datagrams - datagrams;
    datagrams = runner.received.datagrams;
    thread.handed = 0;
    const giveWay = new AbortController();
    let askedAtMs = 0;
    const t0 = performance.now();
    thread.onChunk = () => {
      askedAtMs ||= performance.now() - t0;
      giveWay.abort();
    };
    const aborted = await runner.listTable('inet', table, undefined, giveWay.signal).then(
      () => 'finished',
      (e: Error) => e.name,
    );
    const abortedMs = performance.now() - t0;
    const abortedDatagrams = runner.received.datagrams - datagrams;
    const handedBeforeNext = thread.handed;
    thread.onChunk = undefined;
    // an already fired signal: the read stops after the listing, before any element dump
    const early = new AbortController();
    early.abort();
    thread.handed = 0;
    const earlyOutcome = await runner.listTable('inet', table, undefined, early.signal).then(
      () => 'finished',
      (e: Error) => e.name,
    );
    const handedEarly = thread.handed;
    thread.handed = 0;
    const t1 = performance.now();
    const next = inventoryText(await runner.listTable('inet', table));
    const nextMs = performance.now() - t1;
    return {
      reference,
      referenceDumps,
      warm,
      wholeDatagrams,
      abortedDatagrams,
      askedAtMs,
      aborted,
      abortedMs,
      handedBeforeNext,
      earlyOutcome,
      handedEarly,
      next,
      nextMs,
      nextStats: runner.lastRead,
      handedNext: thread.handed,
      workers: thread.workers,
    };
  } finally {
    runner.close();
    nft('delete', 'table', 'inet', table);
  }
}

/**
 * A dataplane's resync that must read the whole table (notifications off, the generation moved
 * by another table) and is asked to give way: ResyncYielded, nothing written (the generation
 * stays), drift it would have repaired still there; the resync after it repairs.
 */
export async function resyncGivingWay(services: number) {
  const table = 'givewaydp';
  const runner = new NftNetlinkRunner({ dumpThreadMinSets: 1 });
  const dp = new NftablesDataplane({ runner, table, changeNotifications: false });
  try {
    const state = stateOf(services);
    await dp.apply(state);
    nft('add', 'table', 'inet', `${table}-other`);
    nft('delete', 'element', 'inet', table, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    const listed = () => /10\.96\.0\.1 \. tcp \. 80 : goto/.test(nft('list', 'map', 'inet', table, 'service-ips'));
    const before = await runner.generation();
    const fired = new AbortController();
    fired.abort();
    const gaveWay = await dp.resync({ yieldTo: fired.signal }).then(
      (r) => ({ outcome: 'finished', writes: r.kernelWrites }),
      (e: Error) => ({ outcome: e instanceof ResyncYielded ? 'yielded' : e.message, writes: 0 }),
    );
    const afterGiveWay = { generationMoved: (await runner.generation()) !== before, elementBack: listed() };
    const repaired = await dp.resync({ yieldTo: new AbortController().signal });
    return {
      gaveWay,
      afterGiveWay,
      repaired: { writes: repaired.kernelWrites, verified: repaired.verified, elementBack: listed() },
    };
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
    nft('delete', 'table', 'inet', `${table}-other`);
  }
}

/**
 * A resync whose whole read was due (the table last known whole over `wholeReadEveryMs` ago) is
 * asked to give way only once that read is complete: it still gives way, and the whole read stays
 * owed, so the resync after the apply reads the whole table again, not what notifications named.
 */
export async function giveWayAfterTheRead(services: number) {
  const table = 'givewaylate';
  const real = new NftNetlinkRunner({ dumpThreadMinSets: 1 });
  let afterWholeRead: (() => void) | undefined;
  // the real runner, calling afterWholeRead once a whole read (no scope) returned
  const runner = new Proxy(real, {
    get(target, prop) {
      if (prop === 'listTable')
        return async (...args: Parameters<NftNetlinkRunner['listTable']>) => {
          const rb = await target.listTable(...args);
          if (args[2] === undefined) afterWholeRead?.();
          return rb;
        };
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  let now = 0;
  const dp = new NftablesDataplane({ runner, table, clock: () => now, wholeReadEveryMs: 1000 });
  try {
    await dp.apply(stateOf(services));
    now += 2000; // the periodic whole read is due
    nft('add', 'table', 'inet', `${table}-other`); // the generation moves: no skipping the read
    const giveWay = new AbortController();
    afterWholeRead = () => giveWay.abort();
    const late = await dp.resync({ yieldTo: giveWay.signal }).then(
      (r) => `finished: ${r.notes.join('; ')}`,
      (e: Error) => (e instanceof ResyncYielded ? 'yielded' : e.message),
    );
    afterWholeRead = undefined;
    const retry = await dp.resync();
    return { late, retryNotes: retry.notes, retryVerified: retry.verified, retryWrites: retry.kernelWrites };
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
    nft('delete', 'table', 'inet', `${table}-other`);
  }
}
