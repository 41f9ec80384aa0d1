// The fake kernel (test/support/fake-nft-runner.ts) with a ruleset generation, one commit per run,
// and a change record that names nothing of ours: what the dataplane's resync bookkeeping reads.
import type { NftTableChanges } from '../../../../libs/dataplane/nftables/nft-change-log.ts';
import type { NftTransaction } from '../../../../libs/dataplane/nftables/nft-transaction.ts';
import { FakeNftRunner } from '../../../support/fake-nft-runner.ts';

export class GenerationRunner extends FakeNftRunner {
  gen = 100;
  lastCommits = 1;
  override async run(tx: NftTransaction): Promise<void> {
    await super.run(tx);
    this.gen++;
  }
  async generation(): Promise<number> {
    return this.gen;
  }
  async changesSince(_f: string, _t: string, since: number, now: number): Promise<NftTableChanges> {
    return { chains: new Set(), sets: new Set(), elements: [], commits: now - since };
  }
}
