import { defineConfig } from 'vitest/config';

// Host test suite. Tests that need IPVS (not in this machine's kernel) live under
// test/vm/ and run inside the qemu VM through vitest.vm.config.ts.
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
  },
});
