export { NftablesDataplane, type NftablesDataplaneOptions } from './nftables-dataplane.ts';
export { renderNftRuleset, formatNftTable, type RulesetTextOptions } from './render-nft-ruleset.ts';
export { renderNftObjects, type NftObjects } from './nft-objects.ts';
export { planNftUpdate, planFullLoad, inventoryOf, type NftInventory } from './plan-nft-update.ts';
export { NftTransaction, type NftOp, type NftObject, type NftVerb } from './nft-transaction.ts';
export { readNftTable, type NftReadBack } from './read-nft-table.ts';
export { NftError, type NftRunner } from './nft-runner.ts';
export { NftCliRunner, type NftCliRunnerOptions } from './nft-cli-runner.ts';
export { NFT_TABLE, NFT_FAMILY } from './nft-names.ts';
