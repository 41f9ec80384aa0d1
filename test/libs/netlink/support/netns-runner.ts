// Child-process entry for runInNetns: `node --import tsx netns-runner.ts MODULE FN ARGS_JSON`,
// started under `ip netns exec NS` so every netlink socket it opens lives in that netns.
// Prints one result line (marker + JSON) on stdout; errors travel as data, exit code 0.
import { pathToFileURL } from 'node:url';

const MARK = '@@netns-result@@';
const [modulePath, fnName, argsJson] = process.argv.slice(2);

async function main(): Promise<unknown> {
  if (!modulePath || !fnName) throw new Error('usage: netns-runner.ts MODULE FN [ARGS_JSON]');
  const mod = (await import(pathToFileURL(modulePath).href)) as Record<string, unknown>;
  const fn = mod[fnName];
  if (typeof fn !== 'function') throw new Error(`${modulePath} has no exported function ${fnName}`);
  const args = argsJson ? (JSON.parse(argsJson) as unknown[]) : [];
  return await (fn as (...a: unknown[]) => unknown)(...args);
}

main().then(
  (value) => {
    process.stdout.write(`\n${MARK}${JSON.stringify({ ok: true, value: value ?? null })}\n`);
  },
  (e: unknown) => {
    const err = e as { name?: string; message?: string; code?: string; errno?: number; stack?: string };
    process.stdout.write(
      `\n${MARK}${JSON.stringify({
        ok: false,
        error: {
          name: err.name,
          message: err.message ?? String(e),
          code: err.code,
          errno: err.errno,
          stack: err.stack,
        },
      })}\n`,
    );
  },
);
