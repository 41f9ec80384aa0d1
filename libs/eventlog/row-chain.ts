import { sha256Hex } from '../model/index.ts';

/** The hash before the first row of every chain. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * One link of a table's hash chain: sha256 of the previous hash, then each column in a fixed
 * order as a type tag, its length in UTF-16 code units and its exact stored text ("s5:hello",
 * "n2:42", "z"), which is unambiguous without escaping. Payload columns are hashed as the text stored, so verification
 * recomputes the link from the row alone, with no re-serialisation that could drift; and large
 * payloads are fed to the hash as they are rather than escaped into a JSON array first.
 */
export function chainHash(
  prev: string,
  fields: readonly (string | number | null)[],
  /** How many of `fields` the link covers (the first ones): a row may carry its own link after them. */
  count = fields.length,
): string {
  // One string, one native digest call: much cheaper per row than an update per column.
  let text = prev;
  for (let i = 0; i < count; i++) {
    const f = fields[i]!;
    if (f === null) text += '\nz';
    else if (typeof f === 'number') {
      const t = String(f);
      text += `\nn${t.length}:${t}`;
    } else text += `\ns${f.length}:${f}`;
  }
  return sha256Hex(text);
}

/**
 * The append-only tables that carry a chain, and the columns each link covers, in order.
 * `optional`: how many of the last columns were added by a later migration; such a column is part
 * of the link only when it is not NULL (linkFields), so rows written before it still hash, ship
 * and import exactly as they did.
 */
export const CHAINS: Readonly<Record<ChainName, ChainSpec>> = {
  events: {
    id: 'seq',
    columns: [
      'seq',
      'received_at',
      'kind',
      'type',
      'origin',
      'namespace',
      'name',
      'uid',
      'resource_version',
      'service',
      'object',
    ],
  },
  // reading_revision: migration 0008 (NULL on older rows: revision 1)
  versions: {
    id: 'version',
    columns: [
      'version',
      'parent',
      'hash',
      'reason',
      'created_at',
      'seq_from',
      'seq_to',
      'content_of',
      'delta',
      'reading_revision',
    ],
    optional: 1,
  },
  config_revisions: { id: 'revision', columns: ['revision', 'hash', 'reason', 'created_at', 'config'] },
  // received_at: migration 0005 (the planner's time; NULL on older rows)
  acks: {
    id: 'id',
    columns: ['id', 'type', 'node', 'version', 'config_revision', 'at', 'body', 'received_at'],
    optional: 1,
  },
  operations: { id: 'id', columns: ['id', 'kind', 'actor', 'reason', 'params', 'version', 'at'] },
};

export interface ChainSpec {
  readonly id: string;
  readonly columns: readonly string[];
  readonly optional?: number;
}

/**
 * The cells of a row (its chained columns, without row_hash) that its link covers: all of them,
 * less the trailing optional columns that are NULL. Also the form a row is shipped in.
 */
export function linkFields<T extends string | number | null>(chain: ChainName, cells: readonly T[]): readonly T[] {
  const { columns, optional = 0 } = CHAINS[chain];
  let n = cells.length;
  const min = columns.length - optional;
  while (n > min && cells[n - 1] === null) n--;
  return n === cells.length ? cells : cells.slice(0, n);
}

export type ChainName = 'events' | 'versions' | 'config_revisions' | 'acks' | 'operations';
export const CHAIN_NAMES = Object.keys(CHAINS) as ChainName[];
