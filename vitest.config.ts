import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Host test suite. Tests that need IPVS (not in this machine's kernel) live under
// test/vm/ and run inside the qemu VM through vitest.vm.config.ts.
const include = ['test/**/*.test.ts'];
const exclude = ['test/vm/**', 'node_modules/**'];

// Most files run in one shared worker process (isolate: false): a fresh process per file cost
// each of the ~200 files about a second before its first test (starting the worker, importing
// kysely, zod, yaml, the NATS client... again): 143 s of "import" in CI's lane 1 of
// 2026-12-02. vitest still restores mocks and spies after each file. These keep a fresh process:
// - files that vi.mock a module: in a shared process the module under test may already be
//   loaded with the real one, and a mock would leak into later files (found by reading the files,
//   so a new one is covered);
// - test/libs/eventlog/ and test/ha/: multi-hundred-MB checkpoints and planner groups; a fresh
//   heap each, as before.
const root = import.meta.dirname;
const testFiles = (dir: string): string[] =>
  readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
const mocksModules = testFiles('test').filter((f) =>
  /\bvi\.(mock|doMock)\(/.test(readFileSync(path.join(root, f), 'utf8')),
);
const isolated = [...mocksModules, 'test/libs/eventlog/**/*.test.ts', 'test/ha/**/*.test.ts'];

const common = {
  testTimeout: 30_000,
  hookTimeout: 60_000,
  // A PID that is 0 or negative would signal vitest's own process group: refused (see the file).
  setupFiles: ['test/support/signal-by-pid-only.ts'],
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    // Tests spawn bin/switchboard, which runs dist/: build it first when a source changed.
    globalSetup: ['test/support/build-dist.ts'],
    reporters: ['default'],
    projects: [
      { test: { ...common, name: 'host', include, exclude: [...exclude, ...isolated], isolate: false } },
      { test: { ...common, name: 'isolated', include: isolated, exclude, isolate: true } },
    ],
  },
});
