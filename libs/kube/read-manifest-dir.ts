// A manifests directory read once (`plan`, `apply --once`): the same walk, parse and duplicate rule
// as the planner's manifests source, then each object validated.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readKubeObject, type ManifestReadResult, type Rejection } from '../model/index.ts';
import { walkManifestDir } from './manifest-files.ts';
import {
  collectManifestObjects,
  DEFAULT_MAX_MANIFEST_BYTES,
  parseManifestFile,
  sizeRefusal,
  type ManifestFileItems,
} from './manifest-objects.ts';

export interface ReadManifestDirOptions {
  /** Files larger than this are refused unread (default DEFAULT_MAX_MANIFEST_BYTES). */
  readonly maxManifestBytes?: number;
}

/** Reads every manifest under `dir`; a bad file or object is rejected alone, the rest still load. */
export async function readManifestDir(dir: string, options: ReadManifestDirOptions = {}): Promise<ManifestReadResult> {
  const maxBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  const tree = await walkManifestDir(dir);
  const files: ManifestFileItems[] = [];
  const rejected: Rejection[] = [...tree.skipped];
  for (const file of tree.files) {
    const abs = join(dir, file);
    const size = (await stat(abs)).size;
    const bytes = size > maxBytes ? undefined : await readFile(abs);
    if (bytes === undefined || bytes.length > maxBytes) {
      rejected.push({ ref: 'file', source: file, reason: sizeRefusal(bytes?.length ?? size, maxBytes) });
      continue;
    }
    const parsed = parseManifestFile(bytes.toString('utf8'));
    if (parsed.ok) {
      files.push({ file, items: parsed.items });
      for (const d of parsed.rejected) rejected.push({ ref: `document ${d.document}`, source: file, reason: d.reason });
    } else rejected.push({ ref: 'file', source: file, reason: `${parsed.reason}; none of its objects are used` });
  }
  const collected = collectManifestObjects(files);
  rejected.push(...collected.rejected);
  const objects: ManifestReadResult['objects'] = [];
  for (const entry of collected.objects.values()) {
    const r = readKubeObject(entry.object, entry.file);
    if (r.ok) objects.push(r.object);
    else rejected.push(r.rejection);
  }
  return { objects, rejected };
}
