// Runs inside a netns (TestNetns.run): a table programmed by this release is turned, with the
// `nft` binary, into what the previous release left (no hairpin sets, nat-postrouting with only
// `jump masquerading`); a restarted applier (a new dataplane adopting the table) and a resync
// must mend it in place — same table handle, no reload — to exactly what a fresh load programs.
import { execFileSync } from 'node:child_process';
import { NftablesDataplane, NftCliRunner, NftNetlinkRunner } from '../../../libs/dataplane/index.ts';
import type { ApplyResult, NftRunner } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

export interface RepairStep {
  step: string;
  notes: string[];
  writes: number;
  verified: boolean;
  /** The table's kernel handle after the step (a reload would give a new one). */
  handle: number;
  /** `nft list table`'s blocks, sorted (creation order aside), with the table name masked. */
  blocks: string[];
}

const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });
const state = nodeState([
  { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080', '10.1.0.2:8080'] },
  { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, persistenceTimeout: 60, endpoints: ['10.1.0.3:8080'] },
]);
const handleOf = (table: string) => Number(/# handle (\d+)/.exec(nft('-a', 'list', 'table', 'inet', table))?.[1]);
const blocksOf = (table: string) =>
  nft('list', 'table', 'inet', table).replace(`table inet ${table} {`, 'table inet T {').split('\n\n').sort();

/** Makes our table look like the previous release's skeleton. */
function downgradeSkeleton(table: string): void {
  nft('flush', 'chain', 'inet', table, 'nat-postrouting');
  nft('add', 'rule', 'inet', table, 'nat-postrouting', 'jump', 'masquerading');
  nft('delete', 'set', 'inet', table, 'hairpin');
  nft('delete', 'set', 'inet', table, 'hairpin6');
}

export async function repairPreviousReleaseSkeleton(backend: 'netlink' | 'nft'): Promise<RepairStep[]> {
  const runner = (): NftRunner => (backend === 'netlink' ? new NftNetlinkRunner() : new NftCliRunner());
  const table = `sbrep${backend === 'nft' ? 'c' : 'n'}`;
  const fresh = new NftablesDataplane({ runner: runner(), table: `${table}f` });
  const first = new NftablesDataplane({ runner: runner(), table });
  const out: RepairStep[] = [];
  const record = (step: string, r: ApplyResult) =>
    out.push({
      step,
      notes: [...r.notes],
      writes: r.kernelWrites,
      verified: r.verified,
      handle: handleOf(table),
      blocks: blocksOf(table),
    });
  let restarted: NftablesDataplane | undefined;
  try {
    await fresh.apply(state);
    out.push({
      step: 'fresh load',
      notes: [],
      writes: 0,
      verified: true,
      handle: handleOf(`${table}f`),
      blocks: blocksOf(`${table}f`),
    });
    record('first apply', await first.apply(state));
    downgradeSkeleton(table);
    restarted = new NftablesDataplane({ runner: runner(), table });
    record('restarted applier adopts the old skeleton', await restarted.apply(state));
    downgradeSkeleton(table);
    record('resync finds the old skeleton', await restarted.resync());
    record('resync after the repair', await restarted.resync());
    return out;
  } finally {
    for (const d of [fresh, first, restarted]) {
      await d?.cleanup().catch(() => undefined);
      await d?.close();
    }
  }
}
