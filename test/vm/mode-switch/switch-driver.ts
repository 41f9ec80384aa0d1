// Runs one mode-switch step inside a node netns (netlink sockets bind to the caller's netns):
//   ip netns exec NS node --import tsx switch-driver.ts STATE_JSON STATE_DIR apply-ipvs|ipvs-to-nftables|nftables-to-ipvs
// Prints one JSON line with the result. Ownership lives in STATE_DIR, so steps can be separate processes.
import { readFileSync } from 'node:fs';
import { ipvsStatePath } from '../../../libs/dataplane/index.ts';
import { IpvsDataplane } from '../../../libs/dataplane/index.ts';
import { NetlinkKernel } from '../../../libs/dataplane/index.ts';
import { FileOwnershipStore } from '../../../libs/dataplane/index.ts';
import { NftablesDataplane } from '../../../libs/dataplane/index.ts';
import { switchMode } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';

const [stateFile, stateDir, step] = process.argv.slice(2);
const state = JSON.parse(readFileSync(stateFile!, 'utf8')) as NodeState;
const ipvs = new IpvsDataplane({
  kernel: await NetlinkKernel.open(),
  store: new FileOwnershipStore(ipvsStatePath(stateDir!, state.node)),
});
const nft = new NftablesDataplane();
try {
  const result =
    step === 'apply-ipvs'
      ? await ipvs.apply(state)
      : step === 'ipvs-to-nftables'
        ? await switchMode({ from: ipvs, to: nft, state })
        : await switchMode({ from: nft, to: ipvs, state });
  process.stdout.write(JSON.stringify({ result }) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
} finally {
  await ipvs.close();
}
