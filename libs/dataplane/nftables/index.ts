export { NftablesDataplane, type NftablesDataplaneOptions } from './nftables-dataplane.ts';
export { renderNftRuleset, formatNftTable, type RulesetTextOptions } from './render-nft-ruleset.ts';
export { renderNftObjects, type NftObjects } from './nft-objects.ts';
export { planNftUpdate, inventoryOf, type NftInventory, type NftTransaction } from './plan-nft-update.ts';
export { readNftTable, type NftReadBack } from './read-nft-table.ts';
export { NftRunner, NftError, type NftRunnerOptions } from './nft-runner.ts';
export { NFT_TABLE, NFT_FAMILY } from './nft-names.ts';
export { switchMode, ModeSwitchError, type SwitchModeOptions, type SwitchModeResult } from './switch-mode.ts';
