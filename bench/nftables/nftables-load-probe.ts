// Dev probe (not the bench): where an initial load's time goes, ours against `nft -f`, in the
// current network namespace (run it inside one of its own, e.g. under `perf record -a -g`):
//
//   ip netns add p && ip netns exec p npx tsx bench/nftables/nftables-load-probe.ts \
//     --services 10000 --endpoints 10 [--what nft|ours|both] [--read]; ip netns del p
//
// Ours is split into render (NodeState → objects), plan (objects → transaction), compile
// (transaction → netlink messages and batches) and each batch from send to ack (the kernel's
// commit). `--read` also times a whole-table read-back of ours and `nft -j list table`.
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { spawnSync } from 'node:child_process';
import { NftNetlinkRunner, planFullLoad, renderNftObjects, renderNftRuleset } from '../../libs/dataplane/index.ts';
import { benchState } from './bench-state.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    what: { type: 'string', default: 'both' },
    read: { type: 'boolean', default: false },
  },
});
const N = Number(values.services);
const E = Number(values.endpoints);
const st = benchState(N, E);
const now = () => performance.now();
const out: Record<string, unknown> = { services: N, endpoints: E };

/** Runs nft; returns its CPU seconds (user, system) as /usr/bin/time reports them. */
function nft(args: string[], input?: string): { user: number; sys: number } {
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', 'nft', ...args], {
    input,
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
  const [user, sys] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number];
  return { user: user * 1000, sys: sys * 1000 };
}
/** CPU ms of this process since `from` (user, system: the kernel's netlink work runs in our syscalls). */
const cpu = (from?: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(from);
  return { user: u.user / 1000, sys: u.system / 1000 };
};

if (values.what !== 'ours') {
  const text = renderNftRuleset(st, { table: 'baseline' });
  let t = now();
  out.nftLoadCpuMs = nft(['-f', '-'], text);
  out.nftLoadMs = now() - t;
  if (values.read) {
    t = now();
    out.nftListCpuMs = nft(['-j', 'list', 'table', 'inet', 'baseline']);
    out.nftListMs = now() - t;
  }
  nft(['delete', 'table', 'inet', 'baseline']);
}
if (values.what !== 'nft') {
  const runner = new NftNetlinkRunner();
  const c0 = process.cpuUsage();
  const t0 = now();
  const objects = renderNftObjects(st);
  const t1 = now();
  const tx = planFullLoad(objects, 'switchboard');
  const t2 = now();
  const c2 = process.cpuUsage();
  await runner.run(tx);
  const t3 = now();
  out.oursJsCpuMs = cpu(c0).user;
  out.oursRunCpuMs = cpu(c2);
  const r = runner.lastRun;
  Object.assign(out, {
    oursLoadMs: t3 - t0,
    renderMs: t1 - t0,
    planMs: t2 - t1,
    compileMs: r.compileMs,
    batchMs: r.batchMs,
    batchesMs: r.batchMs.reduce((a, b) => a + b, 0),
    messages: r.messages,
    bytes: r.bytes,
  });
  if (values.read) {
    const c4 = process.cpuUsage();
    const t4 = now();
    await runner.listTable('inet', 'switchboard');
    out.oursReadMs = now() - t4;
    out.oursReadCpuMs = cpu(c4);
    out.oursReadSplit = runner.lastRead;
  }
  nft(['delete', 'table', 'inet', 'switchboard']);
  runner.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
