// How a test starts a TypeScript file as a child node process: the arguments after `node`.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { buildChildBundles } from './child-bundles.mjs';

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

/** How to start the TypeScript children `bundledChildren` bundled; `cleanup` removes the bundles. */
export interface BundledChildren {
  /** The arguments after `node` that run `file` (one of those bundled). */
  args(file: string): string[];
  cleanup(): void;
}

/**
 * For a host test that starts the same TypeScript children many times: bundles `files` once
 * (esbuild, as child-bundles.mjs does for the VM; well under a second) into a directory of its own
 * under .cache/, so each child starts with plain `node`. Through tsx a child spends ~1.5 s of CPU
 * registering tsx and transforming its module graph before its first line. Where
 * SWITCHBOARD_CHILD_BUNDLES names bundles already (the VM, whose tree is read-only), those are used.
 */
export async function bundledChildren(files: string[]): Promise<BundledChildren> {
  if (process.env.SWITCHBOARD_CHILD_BUNDLES) return { args: (file) => [childBundle(file)], cleanup: () => {} };
  const rel = (file: string) => path.relative(root, path.resolve(file));
  const entries = files.map(rel);
  mkdirSync(path.join(root, '.cache'), { recursive: true });
  const dir = mkdtempSync(path.join(root, '.cache', 'host-children.'));
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    await buildChildBundles(dir, entries);
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    args: (file) => {
      if (!entries.includes(rel(file))) throw new Error(`${rel(file)} was not bundled: pass it to bundledChildren`);
      return [path.join(dir, rel(file).replace(/\.ts$/, '.mjs'))];
    },
    cleanup,
  };
}
