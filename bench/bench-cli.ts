/**
 * Bad input to a bench entry point, as the CLI treats it (DESIGN.md "Exit codes", docs/operations.md):
 * one line on stderr naming what is wrong, exit 2 for a usage mistake (an unknown flag, a flag
 * without its value, a value that is not what the flag takes), 1 for any other failure;
 * SWITCHBOARD_DEBUG=1 adds the stack trace. Before, each printed node's stack trace (exit 1), or ran
 * on with NaN for a number it could not read.
 *
 * An entry point imports this module first and reads its flags with benchArgs: the handlers below
 * are set when it is imported, before the entry point's own top-level code runs.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the bench was called: exit 2. */
export class BenchUsageError extends Error {}

const script = (process.argv[1] ?? 'bench').replace(/^.*\/bench\//, 'bench/');

function fail(e: unknown): never {
  const err = e as Error & { code?: string };
  const usage = e instanceof BenchUsageError || /^ERR_PARSE_ARGS_/.test(err?.code ?? '');
  const message = (err instanceof Error ? err.message : String(e)).split('\n')[0];
  process.stderr.write(`${script}: ${message}${usage ? ' (usage error)' : ''}\n`);
  if (process.env.SWITCHBOARD_DEBUG) console.error(e);
  process.exit(usage ? 2 : 1);
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

/**
 * util.parseArgs (strict: an unknown flag is a usage error), and every string flag whose default
 * is a whole number must be one too: `--services abc` is refused by name instead of running with NaN.
 */
export function benchArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const parsed = parseArgs(config);
  for (const [name, o] of Object.entries(config.options ?? {})) {
    const v = (parsed.values as Record<string, unknown>)[name];
    if (o.type !== 'string' || typeof o.default !== 'string' || !/^\d+$/.test(o.default) || typeof v !== 'string')
      continue;
    if (!/^\d+$/.test(v)) throw new BenchUsageError(`--${name} ${JSON.stringify(v)}: expected a whole number`);
  }
  return parsed;
}
