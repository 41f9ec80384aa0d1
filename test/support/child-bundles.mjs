#!/usr/bin/env node
// Child scripts of the VM tests, bundled on the host before the VM boots.
//
// Under TCG a child started with `node --import tsx x.ts` spent ~20-25 s (51 s with tsx's cache
// cold) registering tsx and transforming its module graph before running a line of the test's
// code: ipvs-client.vm.test.ts starts nine of them. The same sources bundled by esbuild (as
// scripts/build.mjs bundles dist/ for bin/switchboard: npm packages stay external) load with
// plain `node`. scripts/test-vm.sh builds them into a directory of its own for each run and names
// it in SWITCHBOARD_CHILD_BUNDLES; childNodeArgs (child-node-args.ts) then starts the bundle. Outside
// that (the host, run-in-vm.sh by hand) children keep running the sources through tsx.
//
//   node test/support/child-bundles.mjs OUT_DIR
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every TypeScript file a VM test starts as a child process (repo-relative). */
export const CHILD_ENTRIES = [
  'test/libs/netlink/support/netns-runner.ts',
  'test/vm/netlink/ipvs-scenarios.ts',
  'test/libs/netlink/support/link-scenarios.ts',
  'test/libs/netlink/support/ipset-scenarios.ts',
  'test/vm/applier/applier-driver.ts',
  'test/vm/mode-switch/switch-driver.ts',
  'test/vm/mode-switch/auto-driver.ts',
];

/**
 * Bundles `entries` (repo-relative .ts paths; CHILD_ENTRIES by default) into outDir, each at its
 * repo-relative path with .ts -> .mjs. outDir must lie inside the repo, so that the bundles'
 * imports of npm packages resolve from its node_modules.
 */
export async function buildChildBundles(outDir, entries = CHILD_ENTRIES) {
  const { build } = await import('esbuild');
  await build({
    absWorkingDir: root,
    entryPoints: entries,
    outbase: '.',
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    // Class and function names as in the sources (an error's name is part of what scenarios return).
    keepNames: true,
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    process.stderr.write('usage: child-bundles.mjs OUT_DIR\n');
    process.exit(2);
  }
  await buildChildBundles(path.resolve(out));
}
