/**
 * A config move's field changes and their wording, with no import: ctl's sentences use them, and
 * ctl loads no wire schema (zod) to print a line (test/build/dist.test.ts). The computing half,
 * which needs the model's default config, is config-delta.ts.
 */

/** One field a config move changes. */
export interface FieldChange {
  readonly field: string;
  readonly from: unknown;
  readonly to: unknown;
}

const show = (v: unknown) =>
  v === undefined
    ? '(unset)'
    : Array.isArray(v)
      ? v.length
        ? v.join(',')
        : '(none)'
      : v === ''
        ? '(none)'
        : String(v);

/** `scheduler wrr → rr, tcpTimeout 0 → 900`. */
export function formatFieldChanges(changes: readonly FieldChange[]): string {
  return changes.map((c) => `${c.field} ${show(c.from)} → ${show(c.to)}`).join(', ');
}

/** `tcpTimeout=900 scheduler=wrr`: a change as `ctl config set` takes it. */
export function formatAssignments(change: Readonly<Record<string, unknown>>): string {
  return Object.entries(change)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
    .join(' ');
}
