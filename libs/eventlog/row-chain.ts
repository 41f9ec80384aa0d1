import { sha256Hex } from '../model/index.ts';

/** The hash before the first row of every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * One link of a table's hash chain: sha256(previous hash + "\n" + the row's columns as a JSON
 * array in a fixed order). Payload columns are hashed as the exact text stored, so verification
 * recomputes the link from the row alone, with no re-serialisation that could drift.
 */
export function chainHash(prev: string, fields: readonly (string | number | null)[]): string {
  return sha256Hex(prev + '\n' + JSON.stringify(fields));
}

/** The append-only tables that carry a chain, and the columns each link covers, in order. */
export const CHAINS = {
  events: {
    id: 'seq',
    columns: ['seq', 'received_at', 'kind', 'type', 'origin', 'namespace', 'name', 'uid', 'resource_version', 'service', 'object'],
  },
  versions: {
    id: 'version',
    columns: ['version', 'parent', 'hash', 'reason', 'created_at', 'seq_from', 'seq_to', 'content_of', 'delta'],
  },
  config_revisions: { id: 'revision', columns: ['revision', 'hash', 'reason', 'created_at', 'config'] },
  acks: { id: 'id', columns: ['id', 'type', 'node', 'version', 'config_revision', 'at', 'body'] },
  operations: { id: 'id', columns: ['id', 'kind', 'actor', 'reason', 'params', 'version', 'at'] },
} as const;

export type ChainName = keyof typeof CHAINS;
export const CHAIN_NAMES = Object.keys(CHAINS) as ChainName[];
