import { type Command, Option } from 'commander';
// Not through libs/kube's index: that loads the Kubernetes client, which plan/apply do not need.
import { readManifestDir } from '../../../libs/kube/index.ts';
import { maxManifestBytesOption, parseMaxManifestBytes } from '../max-manifest-bytes.ts';
import { ClusterState, renderNodeState } from '../../../libs/planner/index.ts';
import { applyNodeState } from '../../../libs/dataplane/index.ts';
import { createDataplane, DEFAULT_STATE_DIR, type DataplaneChoice } from '../../../libs/dataplane/index.ts';
import {
  refuseUnfitNode,
  withForwardDropCheck,
  withKubeProxyLeftoverCheck,
  withKubeProxyTakeOver,
} from '../../../libs/dataplane/index.ts';
import { NFT_BACKENDS, type NftBackend } from '../../../libs/dataplane/index.ts';
import { UsageError } from '../cli-errors.ts';
import { inputDir, inputFile } from '../flag-values.ts';
import { refuseModeFlags } from '../flag-rules.ts';
import { ipvsRateEstimation, ipvsRateEstimationOption } from '../ipvs-rate-estimation.ts';
import { requireKnownNode } from '../known-node.ts';
import { refuseEmptyApply } from '../empty-manifests.ts';
import { loadProxyConfig } from '../load-proxy-config.ts';
import { settingsIgnoredByMode } from '../../../libs/model/index.ts';
import type { SetExit } from './index.ts';
import { takeNodeLock } from '../../applier/node-lock.ts';

interface ApplyOpts {
  manifests: string;
  node: string;
  mode: DataplaneChoice;
  once?: boolean;
  json?: boolean;
  stateDir: string;
  config?: string;
  scheduler?: string;
  maxManifestBytes?: string;
  takeOverKubeProxy?: boolean;
  nftBackend: NftBackend;
  ipvsRateEstimation: 'on' | 'off' | 'keep';
  allowEmpty?: boolean;
}

/** `switchboard apply --once`: manifests → render → the same applyNodeState path the NATS applier uses. */
export function registerApply(program: Command, setExit: SetExit): void {
  program
    .command('apply')
    .description('program this host once from a directory of Kubernetes manifests (no NATS)')
    .requiredOption('--manifests <dir>', 'directory of Service/EndpointSlice/Node YAML or JSON', inputDir)
    .requiredOption('--node <name>', 'node to render and program for')
    .addOption(
      new Option('--mode <mode>', 'dataplane').choices(['ipvs', 'nftables', 'auto', 'dry-run']).default('auto'),
    )
    .option('--once', 'apply once and exit (required: the long-running applier is `switchboard applier`)')
    .option(
      '--json',
      'print only the JSON summary (stdout always carries it; without --json a readable line goes to stderr)',
    )
    .option('--state-dir <dir>', 'ownership record directory', DEFAULT_STATE_DIR)
    .option('--config <file>', 'proxy config (YAML/JSON)', inputFile)
    .option('--scheduler <name>', 'IPVS scheduler')
    .addOption(
      new Option(
        '--nft-backend <how>',
        'nftables mode: netlink batches, the nft binary, or netlink with nft as fallback',
      )
        .choices([...NFT_BACKENDS])
        .default('auto'),
    )
    .addOption(maxManifestBytesOption())
    .addOption(ipvsRateEstimationOption())
    .option('--allow-empty', 'apply a directory with no Service (removes every service this host proxies)')
    .option(
      '--take-over-kube-proxy',
      "after our state is programmed and verified, remove kube-proxy's (nftables mode: its ip/ip6 kube-proxy tables)",
    )
    .action(async (o: ApplyOpts, cmd: Command) => {
      if (!o.once) throw new UsageError('apply needs --once (the long-running applier is `switchboard applier`)');
      refuseModeFlags(cmd, `apply --mode ${o.mode}`, o.mode, ['--nft-backend'], ['--ipvs-rate-estimation']);
      const t0 = performance.now();
      const config = loadProxyConfig(o.config, {
        mode: o.mode === 'nftables' ? 'nftables' : undefined,
        scheduler: o.scheduler,
      });
      const { objects, rejected } = await readManifestDir(o.manifests, {
        maxManifestBytes: parseMaxManifestBytes(o.maxManifestBytes),
      });
      const cluster = ClusterState.fromObjects(objects);
      requireKnownNode(cluster.data, o.node, o.manifests); // before the kernel is touched
      for (const r of rejected) process.stderr.write(`rejected ${r.ref} (${r.source}): ${r.reason}\n`);
      refuseEmptyApply(o.manifests, cluster.data.serviceCount, rejected.length, !!o.allowEmpty); // likewise
      const state = renderNodeState(cluster.data, o.node, config);
      const renderMs = performance.now() - t0;
      // one process programs a node (node-lock.ts): refused while its applier runs
      const nodeLock = await takeNodeLock(o.stateDir, o.node, 'apply --once');
      for (const note of nodeLock.notes) process.stderr.write(`warning: ${note}\n`);
      const created = await createDataplane({
        mode: o.mode,
        node: o.node,
        stateDir: o.stateDir,
        scheduler: config.scheduler,
        nftBackend: o.nftBackend,
        nftChangeNotifications: false, // one apply, no later resync: no listener child to start
        modeSwitchDrain: false, // nor a resync to finish ipvs mode's drain: auto removes it at once
        ipvsRateEstimation: ipvsRateEstimation(o.ipvsRateEstimation),
        // the long-running applier's node checks (node-preflight.ts): an unfit node is refused
        // (exit 1, one line) before the kernel is touched
        preflight: (mode) => refuseUnfitNode(mode),
        log: (m) => process.stderr.write(`${m}\n`),
      }).catch((e: unknown) => {
        nodeLock.release();
        throw e;
      });
      const takenOver = o.takeOverKubeProxy
        ? withKubeProxyTakeOver(created, { log: (m) => process.stderr.write(`${m}\n`) })
        : created;
      // kube-proxy's leftovers, as the applier checks them (kube-proxy-leftover-check.ts): named in
      // the notes; competing ones fail the run (exit 1, the report as the error line), since there
      // is no later resync here to report the node unhealthy
      let competing: string | undefined;
      // another table's forward drop policy: a warning in the notes (forward-drop-check.ts)
      const dp = withForwardDropCheck(
        withKubeProxyLeftoverCheck(takenOver, {
          takeOver: !!o.takeOverKubeProxy,
          onChecked: (c) => {
            competing = c.competing ? c.report : undefined;
          },
        }),
      );
      try {
        const s = await applyNodeState(dp, state);
        // Settings the mode cannot honour travel in the summary's notes, where a script reads them.
        const ignored = s.mode === 'nftables' ? settingsIgnoredByMode({ ...config, mode: 'nftables' }) : [];
        const summary = {
          ...s,
          notes: [...ignored, ...s.notes],
          durations: {
            renderMs: Math.round(renderMs * 10) / 10,
            ...s.durations,
            totalMs: Math.round((performance.now() - t0) * 10) / 10,
          },
        };
        // The contract (DESIGN.md): apply prints a JSON summary. Stdout is that, always, so a
        // script can parse it with or without --json; people get a readable line on stderr.
        process.stdout.write(JSON.stringify(summary) + '\n');
        if (!o.json)
          process.stderr.write(
            `${s.mode} ${s.node}: ${s.virtualServers} virtual servers, ${s.realServers} real servers, ${s.writes} writes, verified=${s.verified}, hash ${s.hash}\n${summary.notes.map((n) => `  ${n}\n`).join('')}`,
          );
        if (competing) throw new Error(competing); // after the summary: what was programmed is in the kernel
        setExit(s.verified ? 0 : 1);
      } finally {
        await dp.close();
        nodeLock.release();
      }
    });
}
