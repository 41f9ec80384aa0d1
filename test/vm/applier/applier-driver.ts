// Runs an IpvsDataplane inside a node netns (netlink sockets bind to the netns of the process
// that opens them), driven over stdin/stdout JSON lines by applier.vm.test.ts:
//   in:  {"id":1,"cmd":"apply","state":NodeState} | {"id":2,"cmd":"resync"} | {"id":3,"cmd":"cleanup"}
//   out: {"id":1,"result":ApplyResult} | {"id":1,"error":"..."}
// Usage: ip netns exec NS node --import tsx applier-driver.ts STATE_FILE [DRAIN_TIMEOUT_MS]
import { createInterface } from 'node:readline';
import { IpvsDataplane } from '../../../libs/dataplane/index.ts';
import { NetlinkKernel } from '../../../libs/dataplane/index.ts';
import { FileOwnershipStore } from '../../../libs/dataplane/index.ts';
import type { KernelInterface } from '../../../libs/dataplane/index.ts';

const [stateFile, drain] = process.argv.slice(2);
if (!stateFile) {
  process.stderr.write('usage: applier-driver.ts STATE_FILE [DRAIN_TIMEOUT_MS]\n');
  process.exit(2);
}
const real = await NetlinkKernel.open();
const t0 = Date.now();
const trace = (m: string) => process.stderr.write(`[driver ${((Date.now() - t0) / 1000).toFixed(1)} s] ${m}\n`);
// Traces every kernel read and transaction (what the test output shows when a step is slow).
const kernel: KernelInterface = {
  async read(o, signal) {
    const t = Date.now();
    const r = await real.read(o, signal);
    trace(`read ${r.virtualServers.length} services in ${Date.now() - t} ms`);
    return r;
  },
  async run(tx) {
    const t = Date.now();
    try {
      await real.run(tx);
      trace(`ran ${tx.size} ops in ${Date.now() - t} ms`);
    } catch (e) {
      trace(`run failed after ${Date.now() - t} ms: ${(e as Error).message}`);
      throw e;
    }
  },
  readVirtualServers: (keys) => real.readVirtualServers(keys),
  ipv6Unsupported: () => real.ipv6Unsupported(),
  close: () => real.close(),
};
const dp = new IpvsDataplane({
  kernel,
  store: new FileOwnershipStore(stateFile),
  drainTimeoutMs: Number(drain ?? 300_000),
});
process.stdout.write('ready\n');
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line) as { id: number; cmd: string; state?: never };
  trace(`${msg.cmd} #${msg.id}`);
  try {
    const result =
      msg.cmd === 'apply' ? await dp.apply(msg.state!) : msg.cmd === 'resync' ? await dp.resync() : await dp.cleanup();
    process.stdout.write(JSON.stringify({ id: msg.id, result }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: msg.id, error: (e as Error).message }) + '\n');
  }
}
await dp.close();
