import { defineConfig } from 'vitest/config';

// In-VM test suite (IPVS, dummy devices: not in the host kernel). Run it through
// scripts/test-vm.sh, which boots the qemu VM and runs vitest inside it.
//
// Inside the VM the repo (and node_modules) is read-only 9p, so every cache Vite or
// Vitest would write goes to /tmp (tmpfs). Node runs ~30x slower under TCG than on the
// host, hence the long timeouts.
export default defineConfig({
  cacheDir: '/tmp/vitest-vm-cache',
  test: {
    include: ['test/vm/**/*.vm.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 120_000,
    // Tests spawn bin/switchboard, which runs dist/: build it first when a source changed.
    globalSetup: ['test/support/build-dist.ts'],
    // A PID that is 0 or negative would signal vitest's own process group: refused (see the file).
    setupFiles: ['test/support/signal-by-pid-only.ts'],
    pool: 'forks',
    // The VM has 2 cpus and tests share one kernel; files run one after another so
    // network namespaces and IPVS tables of different files never interleave.
    fileParallelism: false,
    watch: false,
    reporters: ['default'],
  },
});
