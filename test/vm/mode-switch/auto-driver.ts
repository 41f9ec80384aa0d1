// Runs the applier's `--mode auto` dataplane (createDataplane: ModeFollowingDataplane over the real
// ipvs and nftables dataplanes) inside a node netns, driven over stdin/stdout JSON lines by
// established-connections.vm.test.ts. One process across commands, as an applier: a retiring mode
// stays open between them; killing it is an applier crash.
//   in:  {"cmd":"apply","stateFile":"..."} | {"cmd":"resync"}
//   out: {"result":ApplyResult,"draining":"ipvs"|null} | {"error":"..."}
// Usage: ip netns exec NS node --import tsx auto-driver.ts STATE_DIR
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createDataplane } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';

const [stateDir] = process.argv.slice(2);
if (!stateDir) {
  process.stderr.write('usage: auto-driver.ts STATE_DIR\n');
  process.exit(2);
}
const dp = await createDataplane({
  mode: 'auto',
  node: 'n1',
  stateDir,
  nftChangeNotifications: false,
  log: (m) => process.stderr.write(`[auto-driver] ${m}\n`),
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line) as { cmd: 'apply' | 'resync'; stateFile?: string };
  try {
    const result =
      cmd.cmd === 'apply'
        ? await dp.apply(JSON.parse(readFileSync(cmd.stateFile!, 'utf8')) as NodeState)
        : await dp.resync();
    process.stdout.write(`${JSON.stringify({ result, draining: dp.draining ?? null })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
  }
}
await dp.close();
