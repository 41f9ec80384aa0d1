// Runs inside a netns (TestNetns.run): drives the same states through NftablesDataplane over
// netlink and over `nft`, each in its own table, and returns what `nft list table` prints for
// both after every step, with the read-backs, for the caller to compare.
import { execFileSync } from 'node:child_process';
import { NftablesDataplane } from '../../../libs/dataplane/index.ts';
import { NftCliRunner } from '../../../libs/dataplane/index.ts';
import { NftNetlinkRunner } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';

export interface StepResult {
  netlinkText: string;
  nftText: string;
  netlinkWrites: number;
  nftWrites: number;
  /** Read-backs (chains digest, sets, elements) of both tables, through both runners. */
  readBacksAgree: boolean;
  netlinkResyncWrites: number;
  verified: boolean;
  /** Batches the last netlink run took (more than one when it exceeded maxBatchBytes). */
  netlinkBatches: number;
}

const listTable = (table: string): string =>
  execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8', maxBuffer: 1 << 28 }).replace(
    `table inet ${table} {`,
    'table inet T {',
  );

/** A read-back as text, maps sorted: equal texts, equal reads. */
export function inventoryText(rb: Awaited<ReturnType<NftNetlinkRunner['listTable']>>): string {
  if (!rb) return 'absent';
  const sortMap = (m: ReadonlyMap<string, unknown>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify({
    chains: sortMap(rb.inventory.chains),
    sets: [...rb.inventory.sets].sort(),
    elements: sortMap(rb.inventory.elements).map(([k, v]) => [k, sortMap(v as Map<string, string>)]),
    problems: rb.skeletonProblems,
  });
}

export async function runBothBackends(states: NodeState[], maxBatchBytes?: number): Promise<StepResult[]> {
  const netlink = new NftNetlinkRunner(maxBatchBytes === undefined ? {} : { maxBatchBytes });
  // Reads rules chain by chain (the path of tables with more chains than a table-wide dump suits).
  const perChain = new NftNetlinkRunner({ tableWideRuleDumpChains: 0 });
  const cli = new NftCliRunner();
  const viaNetlink = new NftablesDataplane({ runner: netlink, table: 'sbnl' });
  const viaNft = new NftablesDataplane({ runner: cli, table: 'sbnft' });
  const out: StepResult[] = [];
  try {
    for (const s of states) {
      const a = await viaNetlink.apply(s);
      const b = await viaNft.apply(s);
      const rbs = [
        await netlink.listTable('inet', 'sbnl'),
        await perChain.listTable('inet', 'sbnl'),
        await cli.listTable('inet', 'sbnl'),
        await netlink.listTable('inet', 'sbnft'),
        await cli.listTable('inet', 'sbnft'),
      ].map(inventoryText);
      const resync = await viaNetlink.resync();
      out.push({
        netlinkText: listTable('sbnl'),
        nftText: listTable('sbnft'),
        netlinkWrites: a.kernelWrites,
        nftWrites: b.kernelWrites,
        readBacksAgree: rbs.every((r) => r === rbs[0]),
        netlinkResyncWrites: resync.kernelWrites,
        verified: a.verified && b.verified,
        netlinkBatches: netlink.lastRun.batches,
      });
    }
    await viaNetlink.cleanup();
    await viaNft.cleanup();
    return out;
  } finally {
    netlink.close();
    perChain.close();
  }
}
