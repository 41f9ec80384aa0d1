// Dev probe (not a bench): does nf_tables' work on a whole-table load's batches slow down when the
// other core is busy? Loads 10k services × 10 endpoints (NftNetlinkRunner, compiled whole, then
// sent in-thread) three times two, with the other core idle, running a CPU spin, or a process that
// allocates and drops memory as a compile does; prints the total, the compile and each batch
// (send → ack). Run inside a netns of its own:
//   ip netns add p && ip netns exec p node --import tsx bench/nftables/batch-contention-probe.ts; ip netns del p
import { execFileSync, spawn } from 'node:child_process';
import { NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../libs/dataplane/index.ts';
import { benchState } from './bench-state.ts';
const objects = renderNftObjects(benchState(10000, 10));
const spin = `for(;;){}`;
const churn = `let a=[];for(;;){a.push(new Array(1000).fill(Math.random()));if(a.length>2000)a=[];}`;
for (const [name, code] of [
  ['idle', ''],
  ['spin', spin],
  ['churn', churn],
  ['idle', ''],
  ['spin', spin],
  ['churn', churn],
] as const) {
  const child = code ? spawn(process.execPath, ['-e', code], { stdio: 'ignore' }) : undefined;
  await new Promise((r) => setTimeout(r, 300));
  const runner = new NftNetlinkRunner();
  const t = performance.now();
  await runner.run(planFullLoad(objects, 'probe'));
  const ms = performance.now() - t;
  child?.kill();
  console.log(
    name,
    Math.round(ms),
    'compile',
    Math.round(runner.lastRun.compileMs),
    'batches',
    runner.lastRun.batchMs.map(Math.round).join(' '),
  );
  execFileSync('nft', ['delete', 'table', 'inet', 'probe']);
  runner.close();
}
