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
  const read = async (runner: NftNetlinkRunner) => {
    try {
      return { text: inventoryText(await runner.listTable('inet', 'dumps')), stats: runner.lastRead };
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
  const dying = await read(new NftNetlinkRunner({ dumpThread: new NftDumpThread(dyingWorker), dumpThreadMinSets: 1 }));
  return { inThread, shared, failing, dying, endpointMaps: (inThread.text.match(/endpoints-/g) ?? []).length };
}

/**
 * The real dump worker (nft-dump-worker.ts), which dies of an uncaught exception right after it
 * handed its first chunk over: mid-read, its sockets open and dumps in flight.
 */
function dyingWorker(): Worker {
  const here = import.meta.url;
  const tsxApi = pathToFileURL(
    createRequire(here)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const entry = new URL('../../../libs/dataplane/nftables/nft-dump-worker.ts', here).href;
  const boot = `
    const { parentPort } = require('node:worker_threads');
    const post = parentPort.postMessage.bind(parentPort);
    parentPort.postMessage = (m) => {
      post(m);
      if (m.payloads) setImmediate(() => { throw new Error('worker died mid-read'); });
    };
    import(${JSON.stringify(tsxApi)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, execArgv: [] });
}
