// Runs inside a netns (TestNetns.run): whole-table loads of large endpoint maps through a runner
// whose socket has the send buffer a node gets at the kernel's default wmem_max (212,992 bytes
// asked, twice that granted), against the same loads through a runner with the default (larger)
// buffer, each into its own table. Returns what both read back, as text, and the batch counts.
import { execFileSync } from 'node:child_process';
import { NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../../libs/dataplane/index.ts';
import { inventoryText } from './nft-backend-scenarios.ts';
import { nodeState } from './node-state-builder.ts';

/** A node state of `services` ClusterIP services with `endpoints` endpoints each. */
const bigServices = (services: number, endpoints: number) =>
  nodeState(
    Array.from({ length: services }, (_, i) => ({
      servicePort: `ns/svc${i}:p`,
      address: `10.96.${i >> 8}.${i & 255}`,
      port: 80,
      endpoints: Array.from(
        { length: endpoints },
        (_, e) => `10.${64 + (e >> 16)}.${(e >> 8) & 255}.${e & 255}:${8000 + i}`,
      ),
    })),
  );

export async function loadThroughSmallSendBuffer(shapes: [services: number, endpoints: number][]) {
  const small = new NftNetlinkRunner({ sendBufferSize: 212_992, dumpThread: false });
  const large = new NftNetlinkRunner({ dumpThread: false });
  const out = [];
  try {
    for (const [services, endpoints] of shapes) {
      const objects = renderNftObjects(bigServices(services, endpoints));
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
