import type { NftReadBack } from './read-nft-table.ts';
import type { NftTransaction } from './nft-transaction.ts';
import type { NftTableChanges } from './nft-change-log.ts';

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
  /**
   * Our table as the kernel holds it now; undefined when it does not exist. With `scope`, a
   * runner may read only those objects (the read-back is then `scoped`: it says nothing about
   * other objects, nor about the skeleton); runners that cannot return the whole table. Once
   * `signal` fires, a read may stop at its next step and reject with the signal's reason (a
   * resync giving way to an apply); what it was reading in the kernel is left whole.
   */
  listTable(
    family: string,
    table: string,
    scope?: NftReadScope,
    signal?: AbortSignal,
  ): Promise<NftReadBack | undefined>;
  close(): void;
  /**
   * The netns' nf_tables ruleset generation (NFT_MSG_GETGEN), for runners that can read it
   * cheaply: every commit that changes any table bumps it by one, nothing else does.
   */
  generation?(): Promise<number>;
  /** Commits (kernel transactions) the last successful `run` made; with `generation`. */
  readonly lastCommits?: number;
  /**
   * Starts (or, after lost notifications, restarts) recording which objects of the table
   * commits change, from nf_tables' notifications; with `generation`. Resolves once every
   * commit after the generation it read is recorded. `onDrift`, when given, is called (why)
   * for every notification that says the table or one of its base chains was deleted
   * (nftDriftSignal), and when notifications were lost (not by our own large transaction): the
   * caller debounces. `onLost`, when given, is called (why) when the running listener is lost
   * (it exited or failed; not when our own large transaction stopped it): nothing restarts it
   * but the next watch (nft-listener-supervisor.ts).
   */
  watch?(family: string, table: string, onDrift?: (why: string) => void, onLost?: (why: string) => void): Promise<void>;
  /**
   * What the commits after generation `since` up to `now` changed in the table, from that
   * record; `{ unknown }` (why) when the record cannot vouch for the range.
   */
  changesSince?(
    family: string,
    table: string,
    since: number,
    now: number,
  ): Promise<NftTableChanges | { unknown: string }>;
}

/** The objects a transaction touched (nft-verify.ts's touchedScope), for a verify that reads only them. */
export interface NftReadScope {
  /** Chains created, refilled or deleted: their rule digest, or their absence. */
  readonly chains: readonly string[];
  /** Per-group sets and maps created or deleted, or whose elements changed: existence, and all their owned elements. */
  readonly sets: readonly string[];
  /** Elements of the skeleton's (large, shared) maps and sets the transaction added or deleted, checked one by one. */
  readonly elements: readonly { readonly set: string; readonly key: string }[];
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
