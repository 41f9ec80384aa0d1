// Whether dist/ (built by scripts/build.mjs) may run in place of the sources beside it.
// Kept free of dependencies: bin/switchboard calls it at every start (a stat per source file,
// about 1 ms), and the build calls it for --if-stale.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export const BUILD_INFO = 'build-info.json';

/** The file whose presence says "this is a source checkout", not an image with dist only. */
export const SOURCE_MARKER = 'services/cli/main.ts';

/**
 * 'fresh': dist/ was built after every file it was built from last changed (or there are no
 * sources here at all: the image ships dist only). 'absent': no build. 'stale': a source file
 * changed (or vanished) after the build started; `reason` names it.
 */
export function distFreshness(root) {
  const sources = exists(path.join(root, SOURCE_MARKER));
  let info;
  try {
    info = JSON.parse(readFileSync(path.join(root, 'dist', BUILD_INFO), 'utf8'));
  } catch {
    return sources
      ? { state: 'absent', reason: 'dist/ is not built' }
      : { state: 'absent', reason: 'neither dist/ nor sources found' };
  }
  if (!sources) return { state: 'fresh' };
  if (typeof info.startedAt !== 'number' || !Array.isArray(info.inputs))
    return { state: 'stale', reason: `dist/${BUILD_INFO} is malformed` };
  for (const rel of info.inputs) {
    let mtime;
    try {
      mtime = statSync(path.join(root, rel)).mtimeMs;
    } catch {
      return { state: 'stale', reason: `${rel} was removed after the build` };
    }
    if (mtime > info.startedAt) return { state: 'stale', reason: `${rel} changed after the build` };
  }
  return { state: 'fresh' };
}

function exists(file) {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}
