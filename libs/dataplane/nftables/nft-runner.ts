import type { NftReadBack } from './read-nft-table.ts';
import type { NftTransaction } from './nft-transaction.ts';

/**
 * The seam between nftables mode and the kernel: run one transaction atomically (all of it
 * applies, or none, like `nft -f`), and read our table back. Implementations: NftCliRunner
 * (spawns `nft`), NftNetlinkRunner (nf_tables netlink batches), and the recording fake in
 * test/support.
 */
export interface NftRunner {
  /** Which implementation this is (`nft`, `netlink`, `fake`), for notes and benchmarks. */
  readonly backend: string;
  /**
   * Runs `tx` as one atomic change. Rejects with the transaction's own `error` (nothing is
   * sent) when an invalid operation was queued, or with NftError when the kernel refuses it.
   */
  run(tx: NftTransaction): Promise<void>;
  /** Our table as the kernel holds it now; undefined when it does not exist. */
  listTable(family: string, table: string): Promise<NftReadBack | undefined>;
  close(): void;
  /**
   * The netns' nf_tables ruleset generation (NFT_MSG_GETGEN), for runners that can read it
   * cheaply: every commit that changes any table bumps it by one, nothing else does.
   */
  generation?(): Promise<number>;
  /** Commits (kernel transactions) the last successful `run` made; with `generation`. */
  readonly lastCommits?: number;
}

export class NftError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`nft ${args.join(' ')} failed (exit ${String(code)}): ${stderr.trim().split('\n').slice(0, 6).join(' | ')}`);
  }
}
