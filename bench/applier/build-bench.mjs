#!/usr/bin/env node
// Bundles the applier (ipvs) bench the way `npm run build` (scripts/build.mjs) bundles what
// bin/switchboard runs, so that the VM run times the code as shipped rather than tsx's transform
// (tsx compiles with keepNames: every named function, inner closures included, gets a
// defineProperty call that the production bundle does not make):
//   node bench/applier/build-bench.mjs OUTFILE [ENTRY]
// ENTRY defaults to this bench; the nftables, fan-out and ingestion benches' --build bundle
// through here too. The options are bench/shipped-build-options.mjs's. OUTFILE must sit inside
// the repo (npm packages stay external and resolve from its node_modules); .cache/ is ignored by git.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHIPPED_BUILD_OPTIONS } from '../shipped-build-options.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [out, entryArg] = process.argv.slice(2);
const entry = entryArg ? path.resolve(entryArg) : path.join(root, 'bench/applier/ipvs-apply.bench.ts');
if (!out) {
  process.stderr.write('usage: node bench/applier/build-bench.mjs OUTFILE [ENTRY]\n');
  process.exit(2);
}
const { build } = await import('esbuild');
await build({
  ...SHIPPED_BUILD_OPTIONS,
  absWorkingDir: root,
  entryPoints: [entry],
  outfile: path.resolve(out),
  packages: 'external',
});
