// The one directory walk and the one file filter for a manifests directory, shared by `plan`,
// `apply --once` and the planner's manifests source, so all of them see the same files.

import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Rejection } from '../model/index.ts';

const MANIFEST_EXTENSION = /\.(ya?ml|json)$/i;

/**
 * A file is a manifest when its name ends in .yaml, .yml or .json and does not start with a dot.
 * Hidden names are editors' swap and backup files (.a.yaml.swp), git's and syncers' scratch files,
 * and the `..data` directories of a mounted ConfigMap; none of them is content.
 */
export function isManifestFileName(name: string): boolean {
  return !name.startsWith('.') && MANIFEST_EXTENSION.test(name);
}

export interface ManifestTree {
  /** Manifest files, relative to the root, sorted by code unit (the order duplicates resolve in). */
  readonly files: readonly string[];
  /** Every directory visited, absolute, the root first (what a watcher watches). */
  readonly dirs: readonly string[];
  /**
   * Entries with a manifest's name that are not read, relative, in walk order, and why: a fifo (opening
   * it would block), a socket or device, a dangling or looping symlink. Probably a mistake (a broken
   * ConfigMap mount, a half-done deploy), so callers list these rejections with their others.
   */
  readonly skipped: readonly Rejection[];
}

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function fileTypeName(st: {
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'unknown type';
}

/** Why a symlink that does not lead to a file or directory is skipped; undefined when it vanished. */
async function brokenLinkReason(path: string): Promise<string | undefined> {
  try {
    const target = await stat(path);
    return `not a regular file (${fileTypeName(target)})`;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'symlink loop';
    if (code !== 'ENOENT') return `cannot follow symlink: ${(e as Error).message}`;
    return (await lstat(path).catch(() => undefined)) ? 'symlink target missing' : undefined;
  }
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch {
    return undefined; // gone between readdir and stat, or a dangling link: not a file to read
  }
}

/**
 * Lists the manifest files under `root`, recursively. Hidden entries are skipped, files and
 * directories reached through symlinks are followed (a ConfigMap volume is all symlinks), and a
 * directory is visited once even when links make a cycle. Entries that vanish mid-walk are skipped.
 */
export async function walkManifestDir(root: string): Promise<ManifestTree> {
  const top = await statOrUndefined(root);
  if (!top) throw new Error(`manifests directory ${root} does not exist`);
  if (!top.isDirectory()) throw new Error(`manifests directory ${root} is not a directory`);
  const files: string[] = [];
  const dirs: string[] = [];
  const skipped: Rejection[] = [];
  const seen = new Set<string>();
  const visit = async (abs: string, rel: string): Promise<void> => {
    const real = await realpath(abs).catch(() => undefined);
    if (real === undefined || seen.has(real)) return;
    seen.add(real);
    dirs.push(abs);
    let entries: Dirent[];
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (e) {
      if (abs !== root) return; // a subdirectory removed while we walked
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `manifests directory ${root} does not exist`
          : `manifests directory ${root}: ${(e as Error).message}`,
      );
    }
    for (const entry of entries.sort((a, b) => byCodeUnit(a.name, b.name))) {
      if (entry.name.startsWith('.')) continue;
      const childAbs = join(abs, entry.name);
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await statOrUndefined(childAbs);
        isDir = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDir) await visit(childAbs, childRel);
      else if (!isManifestFileName(entry.name)) continue;
      else if (isFile) files.push(childRel);
      else {
        // Never opened: a fifo would block the read. Named so the operator sees it.
        const reason = entry.isSymbolicLink()
          ? await brokenLinkReason(childAbs)
          : `not a regular file (${fileTypeName(entry)})`;
        if (reason !== undefined) skipped.push({ ref: 'file', source: childRel, reason: `skipped: ${reason}` });
      }
    }
  };
  await visit(root, '');
  return { files: files.sort(byCodeUnit), dirs, skipped };
}
