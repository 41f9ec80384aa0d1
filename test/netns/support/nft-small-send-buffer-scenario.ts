// Runs inside a netns (TestNetns.run): whole-table loads of large endpoint maps through a runner
// whose socket has the send buffer a node gets at the kernel's default wmem_max (212,992 bytes
// asked, twice that granted), against the same loads through a runner with the default (larger)
// buffer, each into its own table. Returns what both read back, as text, and the batch counts.
import { execFileSync } from 'node:child_process';
import { NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../../libs/dataplane/index.ts';
import { inventoryText } from './nft-backend-scenarios.ts';
import { servicesWithEndpoints } from './node-state-builder.ts';

export async function loadThroughSmallSendBuffer(shapes: [services: number, endpoints: number][]) {
  const small = new NftNetlinkRunner({ sendBufferSize: 212_992, dumpThread: false });
  const large = new NftNetlinkRunner({ dumpThread: false });
  const out = [];
  try {
    for (const [services, endpoints] of shapes) {
      const objects = renderNftObjects(servicesWithEndpoints(services, endpoints));
      const loaded = await small.run(planFullLoad(objects, 'small')).then(
        () => 'loaded',
        (e: Error) => e.message.slice(0, 300),
      );
      const smallBatches = small.lastRun?.batches;
      await large.run(planFullLoad(objects, 'large'));
      out.push({
        services,
        endpoints,
        loaded,
        smallBatches,
        largeBatches: large.lastRun?.batches,
        maxBatchBytes: small.maxBatchBytes,
        small: inventoryText(await small.listTable('inet', 'small')),
        large: inventoryText(await large.listTable('inet', 'large')),
      });
      for (const t of ['small', 'large'])
        try {
          execFileSync('nft', ['delete', 'table', 'inet', t], { stdio: 'ignore' });
        } catch {
          // a load that failed may have left no table
        }
    }
    return out;
  } finally {
    small.close();
    large.close();
  }
}
