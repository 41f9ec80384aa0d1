// Bench entry points take bad input as the CLI does (bench/bench-cli.ts): one line on stderr naming
// what is wrong, exit 2 for a usage mistake, no stack trace. Real processes through tsx, as the
// benches are run (docs/benchmarks.md); startup-bench is used because it loads nothing heavy
// before reading its flags, and it refuses bad flags before it starts anything.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const bench = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'bench/startup/startup-bench.ts', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });

describe('bench entry points: bad input', () => {
  it('an unknown flag, a flag without its value, a number that is not one: exit 2, one line naming it', () => {
    for (const [args, line] of [
      [['--bogus'], /^bench\/startup\/startup-bench\.ts: Unknown option '--bogus'.* \(usage error\)$/],
      [['--runs'], /^bench\/startup\/startup-bench\.ts: Option '--runs <value>' argument missing \(usage error\)$/],
      [
        ['--runs', 'many'],
        /^bench\/startup\/startup-bench\.ts: --runs "many": expected a whole number \(usage error\)$/,
      ],
    ] as const) {
      const r = bench(...args);
      expect({ args, status: r.status, stdout: r.stdout }).toEqual({ args, status: 2, stdout: '' });
      expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(line)]);
    }
  }, 120_000);
});
