export {
  NftablesDataplane,
  NFT_BACKENDS,
  type NftablesDataplaneOptions,
  type NftBackend,
} from './nftables-dataplane.ts';
export { NftNetlinkRunner, type NftNetlinkRunnerOptions } from './nft-netlink-runner.ts';
export { NftDumpThread } from './nft-dump-thread.ts';
export { renderNftRuleset, formatNftTable, type RulesetTextOptions } from './render-nft-ruleset.ts';
export { renderNftObjects, type NftObjects } from './nft-objects.ts';
export { planNftUpdate, planFullLoad, inventoryOf, type NftInventory } from './plan-nft-update.ts';
export { NftTransaction, type NftOp, type NftObject, type NftVerb } from './nft-transaction.ts';
export { readNftTable, type NftReadBack } from './read-nft-table.ts';
export { NftError, type NftReadScope, type NftRunner } from './nft-runner.ts';
export { NftCliRunner, type NftCliRunnerOptions } from './nft-cli-runner.ts';
export { NFT_TABLE, NFT_FAMILY } from './nft-names.ts';
// What a recording fake of NftRunner needs to model the table the kernel holds (test/support/fake-nft-runner.ts).
export { summarizeRules } from './nft-chain-summary.ts';
export {
  checkSkeleton,
  SKELETON_CHAINS,
  SKELETON_MAPS,
  SKELETON_SETS,
  type SkeletonChain,
  type SkeletonDamage,
  type SkeletonMap,
  type SkeletonSet,
} from './nft-skeleton.ts';
