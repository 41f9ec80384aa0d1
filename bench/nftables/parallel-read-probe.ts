// Dev probe (not a bench): does nf_tables' work in a whole-table read (one element dump per set:
// ~n²/2 set-list visits at 10k maps, inside the reading thread's recvmsg calls) scale over cores?
// Loads 10k services × 10 endpoints once, then reads the whole table with
// NftNetlinkRunner.listTable from one process alone and from two processes at once (each a whole
// read), alternating; prints each read's wall time, its dumps' share and the process's user and
// system CPU. If two at once take about as long as one alone, splitting one read's dumps over
// threads would cut its wall time about in half on two cores. Run inside a netns of its own:
//   ip netns add p && ip netns exec p node --import tsx bench/nftables/parallel-read-probe.ts; ip netns del p
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NftNetlinkRunner, planFullLoad, renderNftObjects } from '../../libs/dataplane/index.ts';
import { benchState } from './bench-state.ts';

const READS = 3;

if (process.argv[2] === 'read') {
  const runner = new NftNetlinkRunner();
  for (let i = 0; i < READS; i++) {
    const c0 = process.cpuUsage();
    const t = performance.now();
    const got = await runner.listTable('inet', 'probe');
    const ms = performance.now() - t;
    const c = process.cpuUsage(c0);
    if (!got) throw new Error('table inet probe not found');
    console.log(
      JSON.stringify({
        read: i,
        ms: Math.round(ms),
        dumpsMs: Math.round(runner.lastRead.dumpsMs),
        userMs: Math.round(c.user / 1000),
        sysMs: Math.round(c.system / 1000),
      }),
    );
  }
  runner.close();
} else {
  const loader = new NftNetlinkRunner();
  await loader.run(planFullLoad(renderNftObjects(benchState(10000, 10)), 'probe'));
  loader.close();
  const self = fileURLToPath(import.meta.url);
  const reader = () =>
    new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [...process.execArgv, self, 'read'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`reader exited ${code}`))));
    });
  try {
    for (const round of [1, 2]) {
      console.log(`round ${round}: alone\n${await reader()}`);
      const [a, b] = await Promise.all([reader(), reader()]);
      console.log(`round ${round}: two at once\n${a}\n--\n${b}`);
    }
  } finally {
    execFileSync('nft', ['delete', 'table', 'inet', 'probe']);
  }
}
