// Runs an IpvsDataplane inside a node netns (netlink sockets bind to the netns of the process
// that opens them), driven over stdin/stdout JSON lines by applier.vm.test.ts:
//   in:  {"id":1,"cmd":"apply","state":NodeState} | {"id":2,"cmd":"resync"} | {"id":3,"cmd":"cleanup"}
//   out: {"id":1,"result":ApplyResult} | {"id":1,"error":"..."}
// Usage: ip netns exec NS node --import tsx applier-driver.ts STATE_FILE [DRAIN_TIMEOUT_MS]
import { createInterface } from 'node:readline';
import { IpvsDataplane } from '../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { NetlinkKernel } from '../../../libs/dataplane/ipvs/netlink-kernel.ts';
import { FileOwnershipStore } from '../../../libs/dataplane/ipvs/ownership-record.ts';

const [stateFile, drain] = process.argv.slice(2);
if (!stateFile) { process.stderr.write('usage: applier-driver.ts STATE_FILE [DRAIN_TIMEOUT_MS]\n'); process.exit(2); }
const dp = new IpvsDataplane({ kernel: await NetlinkKernel.open(), store: new FileOwnershipStore(stateFile), drainTimeoutMs: Number(drain ?? 300_000) });
process.stdout.write('ready\n');
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line) as { id: number; cmd: string; state?: never };
  try {
    const result = msg.cmd === 'apply' ? await dp.apply(msg.state!) : msg.cmd === 'resync' ? await dp.resync() : await dp.cleanup();
    process.stdout.write(JSON.stringify({ id: msg.id, result }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ id: msg.id, error: (e as Error).message }) + '\n');
  }
}
await dp.close();
