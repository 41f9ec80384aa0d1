// Starts a worker thread on a module of ours, from wherever the calling module runs.
//
// From the TypeScript sources (tsx, vitest) the worker is TypeScript too and needs tsx's loader,
// which a worker does not inherit on Node 20. From the build (scripts/build.mjs) each worker is an
// entry of its own, dist/NAME.js, beside main.js, while the calling code sits in main.js or in a
// chunk one folder below it. The worker gets no node options of this process (`execArgv: []`):
// some are refused in a worker (--input-type), and none is needed by ours.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker on module `name` (no extension) beside `callerUrl` (the caller's import.meta.url).
 * Throws, without starting anything, when a build lacks the worker's file.
 */
export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (callerUrl.endsWith('.ts')) {
    const tsxApi = createRequire(callerUrl)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs');
    const entry = new URL(`./${name}.ts`, callerUrl).href;
    const boot = `import(${JSON.stringify(pathToFileURL(tsxApi).href)}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`;
    return new Worker(boot, { ...options, eval: true, execArgv: [] });
  }
  for (const rel of [`./${name}.js`, `../${name}.js`]) {
    const url = new URL(rel, callerUrl);
    if (existsSync(url)) return new Worker(url, { ...options, execArgv: [] });
  }
  throw new Error(`${name}.js is missing beside ${callerUrl} (rebuild: npm run build)`);
}
