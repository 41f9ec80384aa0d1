import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Host test suite. Tests that need IPVS (not in this machine's kernel) live under
// test/vm/ and run inside the qemu VM through vitest.vm.config.ts.
//
// Most files run in one shared worker process (project 'host', isolate: false): a fresh process
// per file cost each of the ~200 files about a second before its first test (starting the worker,
// importing kysely, zod, yaml, the NATS client... again): 143 s of "import" in CI's lane 1 of
// 2026-12-02. vitest still restores mocks and spies after each file. Project 'isolated' keeps a
// fresh process per file for
// - files that vi.mock a module: in a shared process the module under test may already be loaded
//   with the real one, and a mock would leak into later files (found by reading the files, so a
//   new one is covered);
// - test/libs/eventlog/ and test/ha/: multi-hundred-MB checkpoints and planner groups; a fresh
//   heap each, as before.
// Both projects extend this config (so --exclude on the command line applies to both) and split
// the files between them by listing the other's files as excluded.
const root = import.meta.dirname;
const testFiles = readdirSync(path.join(root, 'test'), { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
  .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
const needsIsolation = (f: string) =>
  f.startsWith('test/libs/eventlog/') ||
  f.startsWith('test/ha/') ||
  /\bvi\.(mock|doMock)\(/.test(readFileSync(path.join(root, f), 'utf8'));
const isolated = testFiles.filter(needsIsolation);
const shared = testFiles.filter((f) => !needsIsolation(f));
// vitest 4.1 applies `--exclude GLOB` from the command line to the root config only, not to its
// projects (scripts/test.sh's lane 1 leaves lane 2's files out with it): read it here.
const cliExcludes = process.argv.flatMap((a, i, all) =>
  a === '--exclude' && all[i + 1] ? [all[i + 1]!] : a.startsWith('--exclude=') ? [a.slice('--exclude='.length)] : [],
);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/vm/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests spawn bin/switchboard, which runs dist/: build it first when a source changed.
    globalSetup: ['test/support/build-dist.ts'],
    // A PID that is 0 or negative would signal vitest's own process group: refused (see the file).
    setupFiles: ['test/support/signal-by-pid-only.ts'],
    pool: 'forks',
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'host', exclude: [...isolated, ...cliExcludes], isolate: false } },
      { extends: true, test: { name: 'isolated', exclude: [...shared, ...cliExcludes], isolate: true } },
    ],
  },
});
