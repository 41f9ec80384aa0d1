#!/usr/bin/env node
// Bundles the applier (ipvs) bench the way `npm run build` (scripts/build.mjs) bundles what
// bin/switchboard runs, so that the VM run times the code as shipped rather than tsx's transform
// (tsx compiles with keepNames: every named function, inner closures included, gets a
// defineProperty call that the production bundle does not make):
//   node bench/applier/build-bench.mjs OUTFILE [ENTRY]
// ENTRY defaults to this bench; the nftables bench's --build bundles itself through here too, so
// the shipped-build options have one home.
// The options are scripts/build.mjs's, less what only a multi-entry CLI bundle needs (splitting,
// chunk names, metafile; the bench has no dynamic import) and the source map (the profile summary
// reads function names, which esbuild keeps as written). OUTFILE must sit inside the repo (npm
// packages stay external and resolve from its node_modules); .cache/ is ignored by git.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const [out, entryArg] = process.argv.slice(2);
const entry = entryArg ? path.resolve(entryArg) : path.join(root, 'bench/applier/ipvs-apply.bench.ts');
if (!out) {
  process.stderr.write('usage: node bench/applier/build-bench.mjs OUTFILE [ENTRY]\n');
  process.exit(2);
}
const { build } = await import('esbuild');
await build({
  absWorkingDir: root,
  entryPoints: [entry],
  outfile: path.resolve(out),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
});
