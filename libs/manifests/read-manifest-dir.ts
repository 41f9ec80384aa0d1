import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseManifestText, type ManifestReadResult } from '../model/index.ts';

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/** Manifest files under a directory, recursively, in sorted order (hidden entries skipped). */
export function listManifestFiles(dir: string): string[] {
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new Error(`manifests directory ${dir} does not exist`);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && MANIFEST_EXT.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Reads every manifest under `dir`; bad objects are rejected one by one, the rest still load. */
export function readManifestDir(dir: string): ManifestReadResult {
  const objects: ManifestReadResult['objects'] = [];
  const rejected: ManifestReadResult['rejected'] = [];
  for (const file of listManifestFiles(dir)) {
    const r = parseManifestText(readFileSync(file, 'utf8'), path.relative(dir, file));
    objects.push(...r.objects);
    rejected.push(...r.rejected);
  }
  return { objects, rejected };
}
