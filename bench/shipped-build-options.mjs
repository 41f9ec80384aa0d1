// The esbuild options the benches bundle with, those of scripts/build.mjs less what only the
// multi-entry CLI bundle needs (splitting, chunk names, metafile) and the source map (profile
// summaries read function names, which esbuild keeps as written): one home for
// bench/applier/build-bench.mjs (npm packages external) and bench/build-portable.mjs (inlined).
export const SHIPPED_BUILD_OPTIONS = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
};
