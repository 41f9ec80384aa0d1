import type { Command, Option } from 'commander';
import { UsageError } from './cli-errors.ts';

/**
 * The CLI's rules about which flags a call may give, in one place (flag-values.ts checks what
 * each value is). Every break of them is a usage error (exit 2) in one line naming the flag:
 * - a flag given twice, unless its help says "(repeatable)" or it takes a list (`<x...>`): before,
 *   the last one silently won (`--waves 1 --waves 100%` rolled out to the whole fleet at once);
 * - a flag that does not apply to the subcommand or mode chosen (`db status --deep`): before, it
 *   was silently ignored, and the caller believed it had done something;
 * - a range given backwards (`--from 9 --to 3`): before, an empty answer.
 */

/** Whether an option may be given more than once: a list option, or one whose help says so. */
function repeatable(option: Option): boolean {
  return option.variadic || /\(repeatable\)/.test(option.description);
}

/** Makes a second occurrence of any non-repeatable flag, on any command of `program`'s tree, a usage error. */
export function refuseRepeatedFlags(program: Command): void {
  const visit = (cmd: Command) => {
    for (const option of cmd.options) {
      if (repeatable(option)) continue;
      const values: unknown[] = [];
      // commander emits option:NAME for each occurrence (`--x v`, `--x=v`, a short alias) with the
      // text given, after its own listener stored (and checked) the value.
      cmd.on(`option:${option.name()}`, (value: unknown) => {
        values.push(value);
        if (values.length < 2) return;
        const name = [option.short, option.long].filter(Boolean).join('/');
        const both =
          option.required || option.optional ? ` (${values.map((v) => JSON.stringify(v)).join(' and ')})` : '';
        throw new UsageError(`${name} given twice${both}: give it once`);
      });
    }
    for (const sub of cmd.commands) visit(sub);
  };
  visit(program);
}

/** The option `flag` (`--deep`) of `cmd` or of a command above it (ctl's `--server` for `ctl status`). */
function findOption(cmd: Command, flag: string): { owner: Command; option: Option } | undefined {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const option = c.options.find((o) => o.long === flag || o.short === flag);
    if (option) return { owner: c, option };
  }
  return undefined;
}

/** Whether the caller gave `flag` (on the command line or through its environment variable), not its default. */
export function given(cmd: Command, flag: string): boolean {
  const found = findOption(cmd, flag);
  if (!found) throw new Error(`flag-rules: ${cmd.name()} has no flag ${flag}`); // a typo in a rule, not a usage error
  const source = found.owner.getOptionValueSource(found.option.attributeName());
  return source === 'cli' || source === 'env';
}

/**
 * Refuses the first of `flags` the caller gave: it does not apply to `context` (`db status`,
 * `rollout --resume`), and `why` says what it is for. Call it where the choice is known.
 */
export function refuseFlags(cmd: Command, flags: readonly string[], context: string, why: string): void {
  const flag = flags.find((f) => given(cmd, f));
  if (flag !== undefined) throw new UsageError(`${flag} does not apply to ${context}: ${why}`);
}

/**
 * The dataplane flags of apply and applier: nftables-only ones refused with `--mode ipvs` and
 * dry-run, ipvs-only ones with `--mode nftables` and dry-run (auto may pick either: both apply).
 */
export function refuseModeFlags(
  cmd: Command,
  context: string,
  mode: string,
  nftablesOnly: readonly string[],
  ipvsOnly: readonly string[],
): void {
  const ignored =
    mode === 'dry-run' ? 'dry-run touches no kernel' : `it is for --mode ${mode === 'ipvs' ? 'nftables' : 'ipvs'}`;
  if (mode === 'ipvs' || mode === 'dry-run') refuseFlags(cmd, nftablesOnly, context, ignored);
  if (mode === 'nftables' || mode === 'dry-run') refuseFlags(cmd, ipvsOnly, context, ignored);
}

/** Refuses a range given backwards: `low` after `high` (both optional; equal is a range of one). */
export function refuseInvertedRange(
  low: { flag: string; value: number | string | undefined },
  high: { flag: string; value: number | string | undefined },
  text: (v: number | string) => string = String,
): void {
  if (low.value === undefined || high.value === undefined || low.value <= high.value) return;
  throw new UsageError(
    `${low.flag} ${text(low.value)} is after ${high.flag} ${text(high.value)}: the range is backwards (swap them)`,
  );
}
