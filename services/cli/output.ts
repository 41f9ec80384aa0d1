import { Option, type Command } from 'commander';
import { createRequire } from 'node:module';
import { UsageError } from './cli-errors.ts';

/** yaml loads only for `-o yaml`: loading it costs ctl a third of `node -e 0` at every start (bench/startup). */
const toYaml = (value: unknown): string =>
  (createRequire(import.meta.url)('yaml') as typeof import('yaml')).stringify(value);

/**
 * How read commands print, as kubectl does: a table that fits a terminal (default), `-o wide`
 * (every column, nothing cut), `-o json`, `-o yaml`. `--json` stays as an alias of `-o json`
 * (a contract scripts rely on).
 */
export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

export interface OutputFlags {
  output?: OutputFormat;
  json?: boolean;
}

export function addOutputOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json', 'yaml', 'wide']))
    .option('--json', 'same as -o json');
}

export function outputFormat(o: OutputFlags): OutputFormat {
  if (o.json && o.output !== undefined && o.output !== 'json')
    throw new UsageError(`--json and -o ${o.output} ask for two formats: give one`);
  return o.output ?? (o.json ? 'json' : 'table');
}

/** Prints `value` as JSON/YAML, or the human form (told whether to show everything). */
export function emit(
  format: OutputFormat,
  value: unknown,
  human: (wide: boolean) => string,
  json: (v: unknown) => string = (v) => JSON.stringify(v, null, 2),
): void {
  const text =
    format === 'json' ? json(value) + '\n' : format === 'yaml' ? toYaml(value) : printable(human(format === 'wide'));
  process.stdout.write(text);
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this finds
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * Text for a terminal: every control character but newline and tab shown as a visible escape
 * (`\e`, `\r`, `\xNN`). Human output carries text other parties wrote (a node's NACK error, a
 * reason, an object name); raw, a carriage return or an escape sequence in it could erase or
 * redraw what the operator reads (a node's ERROR row drawn over as SYNCED). JSON and YAML escape
 * control characters themselves.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) =>
    c === '\x1b' ? '\\e' : c === '\r' ? '\\r' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

export type Cell = string | number | boolean | null | undefined;

export interface Column {
  readonly header: string;
  /** Longest cell text in the table form; longer cells end in '…'. -o wide shows them whole. */
  readonly max?: number;
}

const cellText = (c: Cell) => (c === null || c === undefined || c === '' ? '-' : String(c));

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : max <= 1 ? '…' : text.slice(0, max - 1) + '…';
}

/**
 * A left-aligned table. In the table form long cells are cut at their column's max, and on a
 * terminal the last column is cut to the terminal width; `wide` prints every cell whole.
 */
export function table(
  columns: readonly Column[],
  rows: readonly Cell[][],
  wide = false,
  width = process.stdout.isTTY ? process.stdout.columns : undefined,
): string {
  const cells = rows.map((r) =>
    columns.map((c, i) => {
      const t = cellText(r[i]).replace(/\s*\n\s*/g, ' ');
      return wide || c.max === undefined ? t : truncate(t, c.max);
    }),
  );
  const all = [columns.map((c) => c.header), ...cells];
  const widths = columns.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return (
    all
      .map((r) => {
        let line = r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd();
        if (!wide && width && line.length > width) line = truncate(line, width);
        return line;
      })
      .join('\n') + '\n'
  );
}
