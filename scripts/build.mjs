#!/usr/bin/env node
// `npm run build`: compiles the TypeScript sources to dist/ (ES modules + source maps) with
// esbuild. One entry (the CLI); every command module is reached through a dynamic import, so
// esbuild splits it into its own chunk and a command loads only the code it runs. npm packages
// stay external (native modules, and the production node_modules is what the image ships).
//
// Types are not checked here (that is `npm run typecheck`): the build must be fast enough to run
// before every test run (vitest globalSetup) and every VM run.
//
// dist/build-info.json records when the build started and which files it read; bin/switchboard
// runs dist only while none of those files changed since (bin/dist-freshness.mjs).
//
//   node scripts/build.mjs            build
//   node scripts/build.mjs --if-stale build only when dist is absent or older than its inputs
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { distFreshness, BUILD_INFO } from '../bin/dist-freshness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Files that shape the output besides the bundled sources. */
const CONFIG_INPUTS = ['scripts/build.mjs', 'package.json', 'tsconfig.json'];
const CONSOLE_STATIC = 'services/console/static';

export async function build({ ifStale = false, quiet = false } = {}) {
  if (ifStale) {
    const f = distFreshness(root);
    if (f.state === 'fresh') return { built: false, reason: 'fresh' };
  }
  const { build: esbuild } = await import('esbuild');
  const startedAt = Date.now();
  const t0 = performance.now();
  // Build beside dist and swap it in, so a process started meanwhile never sees half a tree.
  const tmp = path.join(root, `.dist-${process.pid}-${startedAt}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const result = await esbuild({
      absWorkingDir: root,
      // worker threads are loaded by path, beside main.js (libs/threads/module-worker.ts)
      entryPoints: {
        main: 'services/cli/main.ts',
        'manifest-decode-worker': 'libs/kube/manifest-decode-worker.ts',
        'nft-dump-worker': 'libs/dataplane/nftables/nft-dump-worker.ts',
      },
      outdir: tmp,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      packages: 'external',
      sourcemap: 'linked',
      sourcesContent: false,
      metafile: true,
      chunkNames: 'chunks/[name]-[hash]',
      logLevel: 'warning',
    });
    // The web console's static files are read at run time, not imported: they travel beside the bundle.
    cpSync(path.join(root, CONSOLE_STATIC), path.join(tmp, 'console-static'), { recursive: true });
    const consoleFiles = readdirSync(path.join(root, CONSOLE_STATIC)).map((f) => `${CONSOLE_STATIC}/${f}`);
    const inputs = [
      ...Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/')),
      ...CONFIG_INPUTS,
      ...consoleFiles,
    ].sort();
    writeFileSync(path.join(tmp, BUILD_INFO), JSON.stringify({ startedAt, inputs }, null, 1) + '\n');
    const dist = path.join(root, 'dist');
    const old = path.join(root, `.dist-old-${process.pid}-${startedAt}`);
    try {
      renameSync(dist, old);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    renameSync(tmp, dist);
    rmSync(old, { recursive: true, force: true });
    const ms = Math.round(performance.now() - t0);
    if (!quiet) process.stderr.write(`build: dist/ from ${inputs.length} files in ${ms} ms\n`);
    return { built: true, ms, inputs: inputs.length };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--if-stale');
  if (unknown.length) {
    process.stderr.write(`build: unknown argument ${unknown[0]} (usage: node scripts/build.mjs [--if-stale])\n`);
    process.exit(2);
  }
  try {
    const r = await build({ ifStale: args.includes('--if-stale') });
    if (!r.built) process.stderr.write('build: dist/ is up to date\n');
  } catch (e) {
    process.stderr.write(`build: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
    process.exit(1);
  }
}
