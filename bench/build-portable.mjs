#!/usr/bin/env node
// Bundles bench entry points with every npm package inlined, for a machine that has node but not
// this repo's node_modules (the accelerator machine the `device` tool lends: 16 cores, no package
// registry). The code is bundled with the shipped build's options otherwise (esbuild, no
// keepNames, as bench/applier/build-bench.mjs and scripts/build.mjs), so it times what ships:
//   node bench/build-portable.mjs OUTDIR ENTRY...
// Each ENTRY becomes OUTDIR/<its base name>.mjs. A package with a native addon cannot be inlined:
// those (NATIVE) stay external, and the ones a bundle imports are copied, with what they depend on
// at run time, into OUTDIR/node_modules, where the bundles resolve them.
import { cpSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHIPPED_BUILD_OPTIONS } from './shipped-build-options.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [outDir, ...entries] = process.argv.slice(2);
if (!outDir || entries.length === 0) {
  process.stderr.write('usage: node bench/build-portable.mjs OUTDIR ENTRY...\n');
  process.exit(2);
}
const NATIVE = ['netlink', 'better-sqlite3'];
/** Dependencies used only to build or fetch an addon at install time. */
const INSTALL_ONLY = new Set(['prebuild-install', 'node-addon-api', 'node-gyp']);
/** What a native package needs at run time: not its C sources nor the compiler's objects. */
const runtimeFile = (p) => !/(^|\/)(deps|src|obj|obj\.target|\.deps)(\/|$)|\.a$/.test(p);
const used = new Set();
const { build } = await import('esbuild');
for (const entry of entries) {
  await build({
    ...SHIPPED_BUILD_OPTIONS,
    absWorkingDir: root,
    entryPoints: [path.resolve(entry)],
    outfile: path.resolve(outDir, `${path.basename(entry).replace(/\.[cm]?ts$/, '')}.mjs`),
    // CommonJS packages inlined into an ES module still call require() for node's builtins
    banner: {
      js: "import { createRequire as __sbRequire } from 'node:module'; const require = __sbRequire(import.meta.url);",
    },
    external: NATIVE,
    metafile: true,
  }).then((r) => {
    for (const out of Object.values(r.metafile.outputs))
      for (const i of out.imports) if (i.external && NATIVE.includes(i.path)) used.add(i.path);
  });
}
/** Copies a package and its runtime dependencies (not @types/) into OUTDIR/node_modules. */
function copyPackage(name, seen = new Set()) {
  if (seen.has(name) || name.startsWith('@types/') || INSTALL_ONLY.has(name)) return;
  seen.add(name);
  const from = path.join(root, 'node_modules', name);
  if (!existsSync(from)) return; // an optional dependency not installed here
  cpSync(from, path.resolve(outDir, 'node_modules', name), {
    recursive: true,
    dereference: true,
    filter: (p) => runtimeFile(path.relative(from, p)),
  });
  const pkg = JSON.parse(readFileSync(path.join(from, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) copyPackage(dep, seen);
}
for (const name of used) copyPackage(name);
// the console's static files beside the bundles, as scripts/build.mjs puts them beside dist/'s
cpSync(path.join(root, 'services/console/static'), path.resolve(outDir, 'console-static'), { recursive: true });
