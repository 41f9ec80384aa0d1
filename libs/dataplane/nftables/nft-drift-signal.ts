import type { NftNotification } from '../../netlink/index.ts';
import { SKELETON_CHAINS } from './nft-skeleton.ts';

/** The chains of our table hooked into netfilter: without them (or their rules) no packet reaches the rest. */
const BASE_CHAINS: ReadonlySet<string> = new Set(SKELETON_CHAINS.filter((c) => c.hook).map((c) => c.name));

/**
 * Why an nf_tables notification says that what we programmed in `table` stopped working as a
 * whole, or undefined: the table deleted (`nft flush ruleset`, which Debian's stock
 * /etc/nftables.conf starts with; firewalld's reload; `nft delete table`), or a base chain
 * deleted or rules deleted from it (`nft flush table`, `nft flush chain`). Then every service of
 * the node fails until the table is repaired, so the applier resyncs at once instead of at the
 * next `--resync-interval` (probe7 C1). Deletions only: our own loads create the table and its
 * base chains (a signal for each would cost a resync after every load), and we never delete
 * them except in `cleanup`, after which nothing is applied to repair towards. Other objects'
 * drift (one service's chain, a map element) waits for the periodic resync, which reads back
 * what notifications named. Pure.
 */
export function nftDriftSignal(n: NftNotification, family: number, table: string): string | undefined {
  if (n.kind === 'gen' || n.family !== family || n.table !== table || !('deleted' in n) || !n.deleted) return undefined;
  if (n.kind === 'table') return `table ${table} deleted`;
  if (n.kind === 'chain' && BASE_CHAINS.has(n.name)) return `base chain ${n.name} of table ${table} deleted or flushed`;
  return undefined;
}
