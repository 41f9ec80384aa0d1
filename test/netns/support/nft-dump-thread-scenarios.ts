// Runs inside a netns (TestNetns.run): loads one table, then reads it whole — every dump in the
// calling thread, a share on the dump thread (nft-dump-thread.ts), with a dump thread whose worker
// fails at start, and with one whose worker dies mid-read (then that runner's next read) — and
// returns the read-backs as text with each read's stats.
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { NftDumpThread, NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../../libs/dataplane/index.ts';
import { startModuleWorker } from '../../../libs/threads/index.ts';
import { inventoryText } from './nft-backend-scenarios.ts';
import { nodeState } from './node-state-builder.ts';

export async function readThreeWays(services: number) {
  const state = nodeState(
    Array.from({ length: services }, (_, i) => ({
      servicePort: `ns/svc${i}:p`,
      address: `10.96.${i >> 8}.${i & 255}`,
      port: 80,
      endpoints: Array.from({ length: 1 + (i % 3) }, (_, e) => `10.${64 + e}.${i >> 8}.${i & 255}:8080`),
    })),
  );
  const loader = new NftNetlinkRunner({ dumpThread: false });
  await loader.run(planFullLoad(renderNftObjects(state), 'dumps'));
  loader.close();
  const readOnce = async (runner: NftNetlinkRunner) => ({
    text: inventoryText(await runner.listTable('inet', 'dumps')),
    stats: runner.lastRead,
  });
  const read = async (runner: NftNetlinkRunner) => {
    try {
      return await readOnce(runner);
    } finally {
      runner.close();
    }
  };
  const inThread = await read(new NftNetlinkRunner({ dumpThread: false }));
  const shared = await read(new NftNetlinkRunner({ dumpThread: new NftDumpThread(), dumpThreadMinSets: 1 }));
  const failing = await read(
    new NftNetlinkRunner({
      dumpThread: new NftDumpThread(() => new Worker('throw new Error("no dumps today")', { eval: true })),
      dumpThreadMinSets: 1,
    }),
  );
  // the first worker dies mid-read; the same runner's next read starts another, as the applier's would
  let started = 0;
  const afterDeath = new NftNetlinkRunner({
    dumpThread: new NftDumpThread(() => (started++ === 0 ? dyingWorker() : realWorker())),
    dumpThreadMinSets: 1,
  });
  let dying: Awaited<ReturnType<typeof readOnce>>;
  let next: Awaited<ReturnType<typeof readOnce>>;
  try {
    dying = await readOnce(afterDeath);
    next = await readOnce(afterDeath);
  } finally {
    afterDeath.close();
  }
  return {
    inThread,
    shared,
    failing,
    dying,
    next,
    workersStarted: started,
    endpointMaps: (inThread.text.match(/endpoints-/g) ?? []).length,
  };
}

/** The real dump worker, started as NftDumpThread starts it. */
const realWorker = (): Worker =>
  startModuleWorker(
    new URL('../../../libs/dataplane/nftables/nft-dump-thread.ts', import.meta.url).href,
    'nft-dump-worker',
  );

/** The real dump worker, made to die right after its first chunk (dying-dump-worker.ts). */
const dyingWorker = (): Worker =>
  startModuleWorker(
    new URL('../../libs/dataplane/nftables/support/dying-dump-worker.ts', import.meta.url).href,
    'dying-dump-worker',
  );

/** Open file descriptors of this process (sockets included). */
const openFds = (): number => readdirSync('/proc/self/fd').length;

/**
 * A table of a few large endpoint maps, read whole `rounds` times by one runner whose dump thread
 * starts its workers with a heap far too small for their share (as DUMP_WORKER_LIMITS would stop a
 * runaway one): V8 ends each worker mid-read. Returns each read as text with its stats and this
 * process's open descriptors after it, and an in-thread read of the same table.
 */
export async function readPastWorkerHeap(rounds: number) {
  const state = nodeState(
    Array.from({ length: 8 }, (_, i) => ({
      servicePort: `ns/big${i}:p`,
      address: `10.96.1.${i + 1}`,
      port: 80,
      endpoints: Array.from({ length: 5000 }, (_, e) => `10.${64 + i}.${e >> 8}.${e & 255}:8080`),
    })),
  );
  const loader = new NftNetlinkRunner({ dumpThread: false });
  await loader.run(planFullLoad(renderNftObjects(state), 'heap'));
  const inThread = inventoryText(await loader.listTable('inet', 'heap'));
  loader.close();
  let started = 0;
  const runner = new NftNetlinkRunner({
    dumpThread: new NftDumpThread(() => {
      started++;
      return startModuleWorker(
        new URL('../../../libs/dataplane/nftables/nft-dump-thread.ts', import.meta.url).href,
        'nft-dump-worker',
        { resourceLimits: { maxOldGenerationSizeMb: 4, maxYoungGenerationSizeMb: 1 } },
      );
    }),
    dumpThreadMinSets: 1,
  });
  const reads = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const text = inventoryText(await runner.listTable('inet', 'heap'));
      // the ended worker's exit is handled on this thread's loop: let it run before counting
      await new Promise((r) => setTimeout(r, 200));
      reads.push({ text, stats: runner.lastRead, fds: openFds() });
    }
  } finally {
    runner.close();
  }
  return { inThread, reads, workersStarted: started };
}
