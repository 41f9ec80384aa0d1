import { type Command, Option } from 'commander';
// Not through libs/kube's index: that loads the Kubernetes client, which plan/apply do not need.
import { readManifestDir } from '../../../libs/kube/index.ts';
import { maxManifestBytesOption, parseMaxManifestBytes } from '../max-manifest-bytes.ts';
import {
  ClusterState,
  formatIpsetSave,
  formatIpvsadm,
  renderNodeState,
  vipConflicts,
} from '../../../libs/planner/index.ts';
import { canonicalJson, type NodeState, type ProxyConfig, settingsIgnoredByMode } from '../../../libs/model/index.ts';
import { loadProxyConfig } from '../load-proxy-config.ts';
import { UsageError } from '../cli-errors.ts';
import { inputDir, inputFile } from '../flag-values.ts';
import { requireKnownNode } from '../known-node.ts';
import { emptyManifestsSentence } from '../empty-manifests.ts';
import type { SetExit } from './index.ts';
import { renderNftRuleset } from '../../../libs/dataplane/index.ts';

/** Output formats of `plan` (`--format`). */
export const planFormats: Record<string, (state: NodeState, config: ProxyConfig) => string> = {
  ipvsadm: (s) => formatIpvsadm(s),
  ipset: (s) => formatIpsetSave(s),
  json: (s) => canonicalJson(s) + '\n',
  nft: (s) => renderNftRuleset(s),
};

/** What `plan` says on stderr beside its output: formats and settings the node's mode does not use. */
export function planNotes(config: ProxyConfig, format: string): string[] {
  const notes = settingsIgnoredByMode(config);
  if (config.mode === 'nftables' && (format === 'ipvsadm' || format === 'ipset'))
    notes.unshift(
      `a node in nftables mode programs no IPVS rules or ipsets; this ${format} output is what the same state would be in ipvs mode (--format nft shows what it programs)`,
    );
  return notes;
}

export function registerPlan(program: Command, setExit: SetExit): void {
  program
    .command('plan')
    .description('print what one node must program, from a directory of Kubernetes manifests')
    .requiredOption('--manifests <dir>', 'directory of Service/EndpointSlice/Node YAML or JSON', inputDir)
    .requiredOption('--node <name>', 'node to render for')
    .addOption(new Option('--mode <mode>', 'proxy mode').choices(['ipvs', 'nftables']))
    .option('--config <file>', 'proxy config (YAML/JSON)', inputFile)
    .option('--scheduler <name>', 'IPVS scheduler')
    .option('--nodeport-addresses <cidrs>', 'comma-separated CIDRs NodePorts are served on')
    .addOption(
      new Option('--format <format>', `output format: ${Object.keys(planFormats).join(' | ')}`).default('ipvsadm'),
    )
    .option('--strict', 'exit 1 when any object or VIP claim was rejected')
    .addOption(maxManifestBytesOption())
    .action(
      async (o: {
        manifests: string;
        node: string;
        mode?: string;
        config?: string;
        scheduler?: string;
        nodeportAddresses?: string;
        format: string;
        strict?: boolean;
        maxManifestBytes?: string;
      }) => {
        const format = planFormats[o.format];
        if (!format)
          throw new UsageError(`unknown --format ${o.format} (one of ${Object.keys(planFormats).join(', ')})`);
        const config = loadProxyConfig(o.config, {
          mode: o.mode,
          scheduler: o.scheduler,
          nodePortAddresses: o.nodeportAddresses?.split(',').filter(Boolean),
        });
        const { objects, rejected } = await readManifestDir(o.manifests, {
          maxManifestBytes: parseMaxManifestBytes(o.maxManifestBytes),
        });
        const state = ClusterState.fromObjects(objects);
        requireKnownNode(state.data, o.node, o.manifests);
        // claims the rendering leaves out (review3 K1) are rejections too: said, and --strict fails
        const all = [...rejected, ...vipConflicts(state.data, config)];
        for (const r of all) process.stderr.write(`rejected ${r.ref} (${r.source}): ${r.reason}\n`);
        for (const note of planNotes(config, o.format)) process.stderr.write(`note: ${note}\n`);
        const empty = emptyManifestsSentence(o.manifests, state.data.serviceCount, rejected.length);
        if (empty) process.stderr.write(`note: ${empty}: the plan is empty\n`);
        process.stdout.write(format(renderNodeState(state.data, o.node, config), config));
        setExit(o.strict && all.length > 0 ? 1 : 0);
      },
    );
}
