// Runs inside a netns (TestNetns.run): a netlink NftablesDataplane whose resync skips the
// read-back while the ruleset generation is unchanged, interleaved with changes made by the
// `nft` binary in the same netns (to our table and to another one), which a resync must notice.
import { execFileSync } from 'node:child_process';
import { NftablesDataplane, NftNetlinkRunner } from '../../../libs/dataplane/index.ts';
import type { ApplyResult } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

export interface ResyncStep {
  step: string;
  writes: number;
  verified: boolean;
  /** The resync skipped the read-back (its generation note). */
  skippedReadBack: boolean;
  /** Does the table hold the element / rules the foreign change removed (after the resync)? */
  tableWhole: boolean;
}

const TABLE = 'sbgen';
const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });
const state = (endpoint: string) =>
  nodeState([
    { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: [endpoint, '10.1.0.2:8080'] },
    { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, persistenceTimeout: 60, endpoints: ['10.1.0.3:8080'] },
  ]);

export async function resyncAcrossForeignChanges(verifyAfterApply: boolean): Promise<ResyncStep[]> {
  const runner = new NftNetlinkRunner();
  const dp = new NftablesDataplane({ runner, table: TABLE, verifyAfterApply });
  const out: ResyncStep[] = [];
  const whole = () => {
    const text = nft('list', 'table', 'inet', TABLE);
    return /10\.96\.0\.1 \. tcp \. 80 : goto/.test(text) && /dnat ip to 10\.1\.0\.3:8080/.test(text);
  };
  const record = async (step: string, r: Promise<ApplyResult>) => {
    const res = await r;
    out.push({
      step,
      writes: res.kernelWrites,
      verified: res.verified,
      skippedReadBack: res.notes.some((n) => n.includes('no read-back')),
      tableWhole: whole(),
    });
  };
  try {
    await dp.apply(state('10.1.0.1:8080'));
    await record('resync after the initial load', dp.resync());
    await dp.apply(state('10.1.0.9:8080'));
    await record('resync after an endpoint change', dp.resync());
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('resync after nft deleted a map element', dp.resync());
    await record('resync after the repair', dp.resync());
    const endpointChain = /chain (endpoint-\S*10\.1\.0\.3\S*) \{/.exec(nft('list', 'table', 'inet', TABLE))?.[1];
    if (!endpointChain) throw new Error('no endpoint chain for 10.1.0.3');
    nft('flush', 'chain', 'inet', TABLE, endpointChain);
    await record('resync after nft flushed an endpoint chain', dp.resync());
    nft('add', 'table', 'inet', `${TABLE}-other`);
    await record('resync after nft added another table', dp.resync());
    await record('resync after that', dp.resync());
    await dp.cleanup();
    nft('delete', 'table', 'inet', `${TABLE}-other`);
    return out;
  } finally {
    await dp.close();
  }
}
