// nftables-mode benchmark (not a test): N services × E endpoints programmed from empty by
// NftablesDataplane over nf_tables netlink, one endpoint change, and a no-op resync, each
// compared with the `nft` binary doing the same in the same run, in a network namespace created
// (and deleted) here. The measuring half runs inside the netns (a netlink socket belongs to the
// namespace of its process), re-executed by the outer half.
//
//   npx tsx bench/nftables/nftables-bench.ts [--services 10000] [--endpoints 10] [--build]
//
// --build: the measuring half runs bundled as scripts/build.mjs bundles what bin/switchboard
// runs (esbuild, no keepNames; .cache/bench-nftables/), with plain node, instead of under tsx,
// whose transform adds a defineProperty call per named closure that the shipped build does not
// make (as bench/applier/run-in-vm.sh's BENCH_BUILD=1).
//
// Last stdout line: JSON with oneChangeMs (the endpoint change of a service without session
// affinity: its netlink batch), nftSameTransactionMs, oneChangeApplyMs (the whole
// dataplane.apply of that change with verifyAfterApply on, the default: render, diff, batch,
// read-back of what it touched), oneChangeApplyNoVerifyMs, initialMs, nftFullLoadMs,
// noopResyncMs (a resync when the ruleset generation is unchanged: no read-back),
// movedResyncMs (a resync after the bench's own commits to our table moved it: reads back what
// nf_tables' notifications named), foreignResyncMs (after a commit to another table: reads
// nothing), fullReadbackMs (a resync after a commit moved it, notifications off: the whole
// table read back), nftListMs, and the ratios.
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { execFileSync, spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { NodeState } from '../../libs/model/index.ts';
import {
  inventoryOf,
  NftablesDataplane,
  NftNetlinkRunner,
  NftTransaction,
  planNftUpdate,
  renderNftObjects,
  renderNftRuleset,
} from '../../libs/dataplane/index.ts';
import { benchState } from './bench-state.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    inside: { type: 'boolean', default: false },
    build: { type: 'boolean', default: false },
  },
});
const N = Number(values.services);
const E = Number(values.endpoints);

const state = (changed = false): NodeState => benchState(N, E, changed);

const now = () => performance.now();
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

function nft(args: string[], input?: string): string {
  const r = spawnSync('nft', args, { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function inside(): Promise<void> {
  // The V8 flags the applier command sets in its process (services/applier/v8-tiering.ts), before
  // any dataplane code runs, as the applier (ipvs) bench does; BENCH_V8_DEFAULTS=1: V8's defaults.
  const applierV8 = process.env.BENCH_V8_DEFAULTS !== '1';
  if (applierV8) tuneV8ForApplier();
  const loadStart = loadavg()[0];
  const before = state(false);
  // As the applier's incremental renderer hands it over: unchanged services are the same objects.
  const changedVs = state(true).virtualServers;
  const after: NodeState = {
    ...before,
    virtualServers: before.virtualServers.map((v, i) =>
      JSON.stringify(v) === JSON.stringify(changedVs[i]) ? v : changedVs[i]!,
    ),
  };
  let t = now();
  const text = renderNftRuleset(before, { table: 'baseline' });
  const renderMs = now() - t;

  // Baselines: the nft binary on a table of its own.
  t = now();
  nft(['-f', '-'], text);
  const nftFullLoadMs = now() - t;
  t = now();
  nft(['-j', 'list', 'table', 'inet', 'baseline']);
  const nftListMs = now() - t;
  const change = planNftUpdate(inventoryOf(renderNftObjects(before)), renderNftObjects(after), 'baseline');
  const undoChange = planNftUpdate(inventoryOf(renderNftObjects(after)), renderNftObjects(before), 'baseline');
  // Median of 3 (each redo after an untimed undo): a single sample on this shared machine swings.
  const nftChanges: number[] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) nft(['-f', '-'], undoChange.toScript());
    t = now();
    nft(['-f', '-'], change.toScript());
    nftChanges.push(now() - t);
  }
  const nftSameTransactionMs = median(nftChanges);
  nft(['delete', 'table', 'inet', 'baseline']);

  // Ours, over netlink.
  const runner = new NftNetlinkRunner();
  const dp = new NftablesDataplane({ runner, verifyAfterApply: false });
  t = now();
  const initial = await dp.apply(before);
  const initialMs = now() - t;
  const initialBatches = runner.lastRun.batches;
  const initialRun = runner.lastRun;
  const handle = (await dp.readBack())!.tableHandle;
  // The whole dataplane apply of the changed state (verify off): render + diff of the changed
  // group + the batch. Median of 3 changes (there and back: the first after a large load also
  // pays a garbage collection of the load's leftovers); the table ends holding `after`.
  const applies: number[] = [];
  let changed = await dp.apply(after);
  for (let k = 0; k < 3; k++) {
    await dp.apply(before);
    t = now();
    changed = await dp.apply(after);
    applies.push(now() - t);
  }
  const oneChangeApplyNoVerifyMs = median(applies);
  const dpRendered = dp.lastRendered;
  // The change alone, as the kernel sees it: the transaction nft ran above, on our table (undone
  // first, so the table ends where the dataplane believes it is).
  const objBefore = renderNftObjects(before);
  const objAfter = renderNftObjects(after);
  const undo = planNftUpdate(inventoryOf(objAfter), objBefore, 'switchboard');
  const tx = planNftUpdate(inventoryOf(objBefore), objAfter, 'switchboard');
  const changes: number[] = [];
  for (let k = 0; k < 5; k++) {
    await runner.run(undo);
    t = now();
    await runner.run(tx);
    changes.push(now() - t);
  }
  const oneChangeMs = median(changes); // median of 5, each after an untimed undo
  const changeMessages = runner.lastRun.messages;
  // The kernel's share of a change: nf_tables re-validates the whole table's jump graph at commit
  // when the batch adds a jump/goto verdict or a rule with an expression that has a validate hook
  // (nat, immediate, lookup, ...). One map element with a plain verdict skips that; with a goto
  // it does not (what an endpoint change of a service with session affinity still pays: it adds
  // an endpoint chain and jumps). Median of 3 add+delete pairs each (one batch per add, one per
  // delete).
  const elementRoundTrip = async (verdict: string) => {
    const xs: number[] = [];
    for (let k = 0; k < 3; k++) {
      const key = `10.255.0.${k + 1} . tcp . 80`;
      const add = new NftTransaction('inet', 'switchboard').add({
        kind: 'element',
        map: 'no-endpoint-services',
        key,
        value: verdict,
      });
      const t0 = now();
      await runner.run(add);
      xs.push(now() - t0);
      await runner.run(
        new NftTransaction('inet', 'switchboard').delete({ kind: 'element', map: 'no-endpoint-services', key }),
      );
    }
    return xs.sort((a, b) => a - b)[1]!;
  };
  const kernelElementPlainMs = await elementRoundTrip('drop');
  const kernelElementGotoMs = await elementRoundTrip('goto reject-chain');
  t = now();
  const reapply = await dp.apply(after);
  const applyNoopMs = now() - t;
  const sameTable = (await dp.readBack())!.tableHandle === handle;
  // The bench's own runner.run calls above committed to our table behind the dataplane's back, so
  // the ruleset generation moved: this resync reads back what nf_tables' notifications named (the
  // changed group's endpoint map, its hairpin entries, the probe elements) and repairs nothing.
  const movedCommits = runner.received.datagrams;
  t = now();
  const movedResync = await dp.resync();
  const movedResyncMs = now() - t;
  const movedResyncDatagrams = runner.received.datagrams - movedCommits;
  // A commit to another table only: the notifications name nothing of ours, nothing is read.
  nft(['add', 'table', 'inet', 'bench-other']);
  t = now();
  const foreignResync = await dp.resync();
  const foreignResyncMs = now() - t;
  nft(['delete', 'table', 'inet', 'bench-other']);
  const afterDelete = await dp.resync(); // the delete moved it again: nothing of ours either
  const notified = (n: readonly string[]) => n.some((x) => x.includes('read back what notifications named'));
  const noneOfOurs = (n: readonly string[]) => n.some((x) => x.includes('none to our table'));
  if (!notified(movedResync.notes) || !noneOfOurs(foreignResync.notes) || !noneOfOurs(afterDelete.notes))
    throw new Error(`unexpected notified resyncs: ${JSON.stringify([movedResync.notes, foreignResync.notes])}`);
  // Nothing committed since that verified read: the resync a steady node runs (generation check).
  const resyncs: number[] = [];
  let resync = movedResync;
  for (let k = 0; k < 5; k++) {
    t = now();
    resync = await dp.resync();
    resyncs.push(now() - t);
  }
  const noopResyncMs = median(resyncs);
  const skipped = (n: readonly string[]) => n.some((x) => x.includes('unchanged since verified: no read-back'));
  if (!skipped(resync.notes)) throw new Error(`unexpected resync path: ${JSON.stringify(resync.notes)}`);
  // The whole read, as every resync after a moved generation made before notifications: a
  // dataplane with them off adopts the table (one untimed whole read), then resyncs after a
  // commit to another table. Timed with the dump thread (as the applier reads) and without (every
  // round before 2026-12-05 10:00 UTC read this way), for the same-run A/B.
  const timedWholeRead = async (reader: NftNetlinkRunner) => {
    const dp = new NftablesDataplane({ runner: reader, verifyAfterApply: false, changeNotifications: false });
    await dp.apply(after);
    nft(['add', 'table', 'inet', 'bench-other']);
    const t0 = now();
    const result = await dp.resync();
    const ms = now() - t0;
    nft(['delete', 'table', 'inet', 'bench-other']);
    if (skipped(result.notes) || notified(result.notes))
      throw new Error(`unexpected whole resync path: ${JSON.stringify(result.notes)}`);
    return { result, ms, split: reader.lastRead };
  };
  const { result: fullResync, ms: fullReadbackMs, split: fullReadbackSplit } = await timedWholeRead(runner);
  const soloRunner = new NftNetlinkRunner({ dumpThread: false });
  const {
    result: soloResync,
    ms: fullReadbackInThreadMs,
    split: fullReadbackInThreadSplit,
  } = await timedWholeRead(soloRunner).finally(() => soloRunner.close());
  for (const x of [resync, fullResync, soloResync, reapply, movedResync, foreignResync, afterDelete])
    if (x.kernelWrites !== 0) throw new Error(`a resync or no-op apply wrote to the kernel: ${JSON.stringify(x)}`);
  // The same change with verifyAfterApply on (the default), by a dataplane that adopted the table
  // (a restarted applier: one whole-table read, no writes), changing the service back.
  const verifying = new NftablesDataplane({ runner });
  const adopt = await verifying.apply(after);
  if (adopt.kernelWrites !== 0 || !adopt.verified) throw new Error(`adoption wrote or failed: ${adopt.notes}`);
  const verifiedApplies: number[] = [];
  let oneChangeApplyReadDatagrams = 0;
  for (let k = 0; k < 3; k++) {
    const readsBefore = runner.received.datagrams;
    t = now();
    const back = await verifying.apply(before);
    verifiedApplies.push(now() - t);
    oneChangeApplyReadDatagrams = runner.received.datagrams - readsBefore;
    if (!back.verified || verifying.lastRendered !== dpRendered)
      throw new Error(`verified change: ${JSON.stringify(back)}, ${verifying.lastRendered} rendered`);
    const there = await verifying.apply(after);
    if (!there.verified) throw new Error(`verified change: ${JSON.stringify(there)}`);
  }
  const oneChangeApplyMs = median(verifiedApplies);
  await dp.cleanup();
  await dp.close();

  const r = {
    loadAverage1m: [loadStart, loadavg()[0]],
    // Bundled as shipped (--build) or under tsx's transform.
    bundled: values.build,
    // The applier's V8 flags set (services/applier/v8-tiering.ts; since 2026-12-05), or V8's defaults.
    applierV8,
    services: N,
    endpoints: E,
    chains: N, // one service chain per service: without affinity there are no endpoint chains
    nftFullLoadMs,
    initialMs,
    ratioInitialVsNftFullLoad: initialMs / nftFullLoadMs,
    nftSameTransactionMs,
    oneChangeMs,
    oneChangeSamplesMs: changes,
    nftSameTransactionSamplesMs: nftChanges,
    ratioOneChangeVsNft: oneChangeMs / nftSameTransactionMs,
    oneChangeApplyMs,
    oneChangeApplySamplesMs: verifiedApplies,
    oneChangeApplyNoVerifyMs,
    oneChangeApplyNoVerifySamplesMs: applies,
    oneChangeApplyReadDatagrams,
    oneChangeApplyRendered: dpRendered,
    kernelElementPlainMs,
    kernelElementGotoMs,
    applyNoopMs,
    nftListMs,
    noopResyncMs,
    ratioNoopResyncVsNftList: noopResyncMs / nftListMs,
    movedResyncMs,
    ratioMovedResyncVsNftList: movedResyncMs / nftListMs,
    movedResyncNotes: movedResync.notes,
    movedResyncDatagrams,
    foreignResyncMs,
    ratioForeignResyncVsNftList: foreignResyncMs / nftListMs,
    fullReadbackMs,
    ratioFullReadbackVsNftList: fullReadbackMs / nftListMs,
    fullReadbackSplit,
    fullReadbackInThreadMs,
    ratioFullReadbackInThreadVsNftList: fullReadbackInThreadMs / nftListMs,
    fullReadbackInThreadSplit,
    renderMs,
    initialWrites: initial.kernelWrites,
    initialBatches,
    initialCompileMs: initialRun.compileMs,
    initialBatchMs: initialRun.batchMs,
    initialJsMs: initialMs - initialRun.batchMs.reduce((a, b) => a + b, 0),
    changeWrites: changed.kernelWrites,
    changeMessages,
    sameTable,
  };
  const lines = [
    `nftables bench: ${N} services × ${E} endpoints (${r.chains} chains), node ${process.version}`,
    `render whole table as nft text (pure)   ${fmt(renderMs)}  (${(text.length / 1e6).toFixed(1)} MB)`,
    `nft -f of the whole table               ${fmt(nftFullLoadMs)}`,
    `initial apply over netlink              ${fmt(initialMs)}  = ${r.ratioInitialVsNftFullLoad.toFixed(3)} × nft -f  (${initialBatches} batches, ${initial.kernelWrites} writes)`,
    `  … of which batches (send to ack)      ${initialRun.batchMs.map(fmt).join(' + ')}; JavaScript ${fmt(r.initialJsMs)} (compile ${fmt(initialRun.compileMs)})`,
    `one endpoint change: nft -f             ${fmt(nftSameTransactionMs)}  (${change.size} ops; median of 3)`,
    `one endpoint change: netlink batch      ${fmt(oneChangeMs)}  = ${r.ratioOneChangeVsNft.toFixed(4)} × nft -f  (${changeMessages} messages, same table: ${sameTable}; median of 5: ${changes.map((x) => x.toFixed(1)).join(', ')} ms)`,
    `one endpoint change: dataplane.apply    ${fmt(oneChangeApplyNoVerifyMs)}  (verify off: render + diff of the changed service + the batch; ${dpRendered} rendered; median of 3)`,
    `  … with verify after apply (default)   ${fmt(oneChangeApplyMs)}  (+ read-back of what it touched: ${oneChangeApplyReadDatagrams} datagrams received; median of 3)`,
    `one map element, plain verdict (batch)  ${fmt(kernelElementPlainMs)}  (commit without table validation)`,
    `one map element, goto verdict (batch)   ${fmt(kernelElementGotoMs)}  (commit re-validates the table's jump graph)`,
    `no-op dataplane.apply                   ${fmt(applyNoopMs)}  (0 writes)`,
    `nft -j list table                       ${fmt(nftListMs)}`,
    `resync, generation moved (our table)    ${fmt(movedResyncMs)}  = ${r.ratioMovedResyncVsNftList.toFixed(4)} × nft -j list  (reads what notifications named: ${movedResyncDatagrams} datagrams; 0 writes)`,
    `resync, generation moved (other table)  ${fmt(foreignResyncMs)}  = ${r.ratioForeignResyncVsNftList.toFixed(4)} × nft -j list  (no read-back; 0 writes)`,
    `resync, generation moved: whole read    ${fmt(fullReadbackMs)}  = ${r.ratioFullReadbackVsNftList.toFixed(3)} × nft -j list  (notifications off; 0 writes)`,
    `  … of which list ${fmt(fullReadbackSplit.listMs)}, ${fullReadbackSplit.dumps} dumps ${fmt(fullReadbackSplit.dumpsMs)} (${fullReadbackSplit.threadDumps} on the dump thread${fullReadbackSplit.threadError ? `; it failed: ${fullReadbackSplit.threadError}` : ''}), digest ${fmt(fullReadbackSplit.digestMs)}`,
    `  the same read, every dump in-thread   ${fmt(fullReadbackInThreadMs)}  = ${r.ratioFullReadbackInThreadVsNftList.toFixed(3)} × nft -j list  (dumps ${fmt(fullReadbackInThreadSplit.dumpsMs)})`,
    `no-op resync, generation unchanged      ${fmt(noopResyncMs)}  = ${r.ratioNoopResyncVsNftList.toFixed(4)} × nft -j list  (0 writes, no read-back; median of 5)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(r)}\n`);
}

if (values.inside) {
  await inside();
} else {
  const ns = `sbbench${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    let self = fileURLToPath(import.meta.url);
    let execArgv = process.execArgv;
    if (values.build) {
      // Inside the repo, so npm packages resolve from its node_modules (kept external, as shipped).
      const out = path.resolve(path.dirname(self), '../../.cache/bench-nftables/nftables-bench.mjs');
      const bundler = path.resolve(path.dirname(self), '../applier/build-bench.mjs'); // the shipped-build options
      execFileSync(process.execPath, [bundler, out, self], { stdio: 'inherit' });
      // the whole read's dump thread, where startModuleWorker looks from the bench's bundle
      const worker = path.resolve(path.dirname(self), '../../libs/dataplane/nftables/nft-dump-worker.ts');
      execFileSync(process.execPath, [bundler, path.join(path.dirname(out), 'nft-dump-worker.js'), worker], {
        stdio: 'inherit',
      });
      self = out;
      execArgv = [];
    }
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        ...execArgv,
        self,
        '--services',
        String(N),
        '--endpoints',
        String(E),
        '--inside',
        ...(values.build ? ['--build'] : []),
      ],
      { stdio: 'inherit' },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}
