// How a test starts a TypeScript file as a child node process: the arguments after `node`.
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * `node ...childNodeArgs(file) ARGS` runs `file`: its esbuild bundle when SWITCHBOARD_CHILD_BUNDLES
 * names a directory of them (scripts/test-vm.sh: tsx costs a child ~20 s under TCG, see
 * child-bundles.mjs), otherwise the source through tsx. A file with no bundle there is an error
 * (list it in CHILD_ENTRIES), not a silent fall back to the slow path. `tsx` is the loader to name
 * (a bare specifier resolves from the child's cwd, the repo).
 */
export function childNodeArgs(file: string, tsx = 'tsx'): string[] {
  const dir = process.env.SWITCHBOARD_CHILD_BUNDLES;
  if (!dir) return ['--import', tsx, file];
  return [childBundle(file)];
}

/** The bundle that stands for `file` (a path to a .ts file, or one already bundled). */
export function childBundle(file: string): string {
  const dir = process.env.SWITCHBOARD_CHILD_BUNDLES;
  if (!dir || !file.endsWith('.ts')) return file;
  const rel = path.relative(root, path.resolve(file));
  const bundle = path.join(dir, rel.replace(/\.ts$/, '.mjs'));
  if (!existsSync(bundle))
    throw new Error(`${rel} has no bundle in ${dir}: add it to CHILD_ENTRIES in test/support/child-bundles.mjs`);
  return bundle;
}
