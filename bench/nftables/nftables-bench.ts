// nftables-mode benchmark (not a test): N services × E endpoints programmed from empty by
// NftablesDataplane, then one endpoint change, each compared with ONE `nft -f` of the equivalent
// whole ruleset measured in the same run, in a network namespace created (and deleted) here.
//
//   npx tsx bench/nftables/nftables-bench.ts [--services 10000] [--endpoints 10]
import { execFileSync, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { NodeState, VirtualServer } from '../../libs/model/index.ts';
import { byCodeUnit, virtualServerKey } from '../../libs/model/index.ts';
import { NftablesDataplane, renderNftRuleset } from '../../libs/dataplane/nftables/index.ts';

const { values } = parseArgs({ options: { services: { type: 'string', default: '10000' }, endpoints: { type: 'string', default: '10' } } });
const N = Number(values.services);
const E = Number(values.endpoints);
const NS = `sbbench${process.pid}`;

function state(changed = false): NodeState {
  const vs: VirtualServer[] = [];
  for (let i = 0; i < N; i++) {
    const realServers = Array.from({ length: E }, (_, j) => ({ address: `10.${64 + (i >> 12)}.${(i >> 4) & 255}.${((i & 15) << 4) + j}`, port: 8080, weight: 1 }));
    if (changed && i === Math.floor(N / 2)) realServers[0] = { address: '10.250.0.1', port: 8080, weight: 1 };
    realServers.sort((a, b) => byCodeUnit(a.address, b.address));
    vs.push({
      protocol: 'TCP', address: `10.96.${i >> 8}.${i & 255}`, port: 80, scheduler: 'rr', schedulerFlags: [], persistenceTimeout: 0,
      role: 'cluster-ip', servicePort: `ns${i % 50}/svc${i}:http`, localOnly: false, sourceRanges: [], realServers,
    });
  }
  vs.sort((a, b) => byCodeUnit(virtualServerKey(a), virtualServerKey(b)));
  return { node: 'bench', virtualServers: vs, boundAddresses: [], ipsets: [],
    settings: { strictARP: false, masqueradeAll: false, clusterCIDR: '10.64.0.0/10', tcpTimeout: 0, tcpFinTimeout: 0, udpTimeout: 0, excludeCIDRs: [] } };
}

function time<T>(fn: () => T): [T, number] { const t = performance.now(); const r = fn(); return [r, performance.now() - t]; }
async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> { const t = performance.now(); const r = await fn(); return [r, performance.now() - t]; }
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

execFileSync('ip', ['netns', 'add', NS]);
try {
  const before = state(false);
  const after = state(true);
  const [text, renderMs] = time(() => renderNftRuleset(before, { table: 'baseline' }));
  // Baseline: the whole equivalent ruleset in one nft process.
  const [, baselineMs] = time(() => {
    const r = spawnSync('ip', ['netns', 'exec', NS, 'nft', '-f', '-'], { input: text, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(String(r.stderr));
  });
  execFileSync('ip', ['netns', 'exec', NS, 'nft', 'delete', 'table', 'inet', 'baseline']);
  const dp = new NftablesDataplane({ netns: NS, verifyAfterApply: false });
  const [initial, initialMs] = await timeAsync(() => dp.apply(before));
  const [, verifyMs] = await timeAsync(async () => { const r = await dp.resync(); if (r.kernelWrites !== 0) throw new Error('resync after apply wrote'); });
  const handle = (await dp.readBack())!.tableHandle;
  const [update, updateMs] = await timeAsync(() => dp.apply(after));
  const txLines = dp.lastTransaction.trim().split('\n').length;
  const sameTable = (await dp.readBack())!.tableHandle === handle;
  const [, noopMs] = await timeAsync(() => dp.apply(after));
  await dp.cleanup();
  const lines = [
    `nftables bench: ${N} services × ${E} endpoints (${N * (E + 1)} chains), netns ${NS}, node ${process.version}`,
    `render (pure)                 ${s(renderMs)}  (${(text.length / 1e6).toFixed(1)} MB of nft text)`,
    `baseline: one nft -f          ${s(baselineMs)}  = 1.00`,
    `initial apply (from empty)    ${s(initialMs)}  = ${(initialMs / baselineMs).toFixed(2)} × baseline  (${initial.kernelWrites} writes)`,
    `read-back verify (resync)     ${s(verifyMs)}  = ${(verifyMs / baselineMs).toFixed(2)} × baseline`,
    `one endpoint change           ${s(updateMs)}  = ${(updateMs / baselineMs).toFixed(3)} × baseline  (${update.kernelWrites} writes, ${txLines}-line transaction, same table: ${sameTable})`,
    `no-op apply                   ${s(noopMs)}  (0 writes)`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  spawnSync('ip', ['netns', 'del', NS]);
}
