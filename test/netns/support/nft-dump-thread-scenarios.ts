// Runs inside a netns (TestNetns.run): loads one table, then reads it whole — every dump in the
// calling thread, a share on the dump thread (nft-dump-thread.ts), with a dump thread whose worker
// fails at start, and with one whose worker dies mid-read (then that runner's next read) — and
// returns the read-backs as text with each read's stats.
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
