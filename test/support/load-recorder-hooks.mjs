// Module resolve hook for load-recorder.mjs (runs on Node's loader thread).
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  appendFileSync(process.env.SWITCHBOARD_LOAD_LOG, `${result.url}\n`);
  return result;
}
