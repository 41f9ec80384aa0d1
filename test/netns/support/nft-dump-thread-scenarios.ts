// Runs inside a netns (TestNetns.run): loads one table, then reads it whole three ways — every
// dump in the calling thread, a share on the dump thread (nft-dump-thread.ts), and with a dump
// thread whose worker fails — and returns the read-backs as text with each read's stats.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { NftDumpThread, NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../../libs/dataplane/index.ts';
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

const WORKER_ENTRY = new URL('../../../libs/dataplane/nftables/nft-dump-worker.ts', import.meta.url).href;

/** The real dump worker, started as startModuleWorker starts it from the sources. */
function realWorker(): Worker {
  return new Worker(`${tsxBoot()} return import(${JSON.stringify(WORKER_ENTRY)}); });`, { eval: true, execArgv: [] });
}

/** The start of an eval worker's code that registers tsx: `…then((t) => { t.register();` */
function tsxBoot(): string {
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  return `import(${JSON.stringify(tsxApi)}).then((t) => { t.register();`;
}

/**
 * The real dump worker (nft-dump-worker.ts), which dies of an uncaught exception right after it
 * handed its first chunk over: mid-read, its sockets open and dumps in flight.
 */
function dyingWorker(): Worker {
  const boot = `
    const { parentPort } = require('node:worker_threads');
    const post = parentPort.postMessage.bind(parentPort);
    parentPort.postMessage = (m) => {
      post(m);
      if (m.payloads) setImmediate(() => { throw new Error('worker died mid-read'); });
    };
    ${tsxBoot()} return import(${JSON.stringify(WORKER_ENTRY)}); });`;
  return new Worker(boot, { eval: true, execArgv: [] });
}
