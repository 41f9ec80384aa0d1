/**
 * What a config revision changes against another config, field by field, and which of those
 * changes its operator did not ask for: a revision is made as a change over the default in force
 * when it is typed, so when another revision became the default meanwhile, rolling it out would
 * also put back that default's fields (probe11 K1). Pure: configs in, field changes out.
 */

import { DEFAULT_PROXY_CONFIG } from '../model/index.ts';
import type { FieldChange } from './field-changes.ts';

export { formatAssignments, formatFieldChanges, type FieldChange } from './field-changes.ts';

/** The config's field order (a revision read back from the log has its keys sorted). */
const ORDER = Object.keys(DEFAULT_PROXY_CONFIG);
const rank = (k: string) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);

/** The fields whose values differ between `from` and `to`, in the config's field order. */
export function configDelta(before: object, after: object): FieldChange[] {
  const from = before as Readonly<Record<string, unknown>>;
  const to = after as Readonly<Record<string, unknown>>;
  const keys = [...new Set([...Object.keys(to), ...Object.keys(from)])].sort((a, b) => rank(a) - rank(b));
  return keys
    .filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]))
    .map((field) => ({ field, from: from[field], to: to[field] }));
}

/**
 * The changes of moving the default `current` to `revision` that the revision was not made for:
 * fields outside `asked` (the fields its operator changed). Empty when the revision was made from
 * `current`, or when the fields it would revert already hold the revision's values.
 */
export function unaskedChanges(current: object, revision: object, asked: readonly string[]): FieldChange[] {
  return configDelta(current, revision).filter((c) => !asked.includes(c.field));
}
