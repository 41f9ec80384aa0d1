import { hostname } from 'node:os';
import { type Command, Option } from 'commander';
import type { ApplyResult, Dataplane } from '../../../libs/dataplane/index.ts';
import { NftablesDataplane } from '../../../libs/dataplane/index.ts';
import { UsageError } from '../cli-errors.ts';
import type { SetExit } from './index.ts';
import { takeNodeLock } from '../../applier/node-lock.ts';

export type CleanupMode = 'ipvs' | 'nftables';

/** Opens the dataplane whose owned state `cleanup` removes; a seam for tests and the factory. */
export type DataplaneOpener = (mode: CleanupMode, o: CleanupOptions) => Promise<Dataplane>;

export interface CleanupOptions {
  stateDir: string;
  node: string;
  netns?: string;
}

/**
 * Default openers. nftables owns exactly one table, so nothing needs recording. ipvs mode owns
 * what its ownership record under the state dir lists; it is loaded lazily so that nftables
 * cleanup works on hosts without IPVS netlink support.
 */
export const openDataplane: DataplaneOpener = async (mode, o) => {
  if (mode === 'nftables') return new NftablesDataplane({ netns: o.netns });
  if (o.netns) throw new UsageError('--netns is supported for nftables only');
  // Without IPVS in this kernel no IPVS service of ours can exist, and ipvs mode never ran here
  // (it refuses to start without IPVS), so there is nothing to remove: say so and succeed.
  const { detectIpvsCapabilities } = await import('../../../libs/dataplane/index.ts');
  const caps = await detectIpvsCapabilities({});
  if (!caps.ipvs)
    return nothingToClean(
      `ipvs: not available in this kernel (${caps.notes.join('; ')}); nothing of ipvs mode can exist`,
    );
  // The same ownership record (ipvsStatePath(stateDir, node)) the applier of this node keeps.
  const { createDataplane } = await import('../../../libs/dataplane/index.ts');
  return createDataplane({ mode: 'ipvs', node: o.node, stateDir: o.stateDir });
};

function nothingToClean(note: string): Dataplane {
  const result: ApplyResult = { kernelWrites: 0, verified: true, durationMs: 0, notes: [note] };
  return {
    mode: 'ipvs',
    apply: () => Promise.reject(new Error('cleanup-only dataplane')),
    resync: async () => result,
    cleanup: async () => result,
    close: async () => undefined,
  };
}

export interface CleanupReport {
  mode: CleanupMode;
  result?: ApplyResult;
  error?: string;
}

/** Removes only what Switchboard owns, for each mode; one failure does not stop the others. */
export async function cleanupModes(
  modes: readonly CleanupMode[],
  o: CleanupOptions,
  open: DataplaneOpener = openDataplane,
): Promise<CleanupReport[]> {
  const out: CleanupReport[] = [];
  for (const mode of modes) {
    let dp: Dataplane | undefined;
    try {
      dp = await open(mode, o);
      const result = await dp.cleanup();
      out.push(
        result.verified ? { mode, result } : { mode, result, error: `left state behind: ${result.notes.join('; ')}` },
      );
    } catch (e) {
      if (e instanceof UsageError) throw e;
      out.push({ mode, error: (e as Error).message });
    } finally {
      await dp?.close().catch(() => undefined);
    }
  }
  return out;
}

export function registerCleanup(program: Command, setExit: SetExit): void {
  program
    .command('cleanup')
    .description('remove everything Switchboard programmed on this host (and nothing else)')
    .addOption(
      new Option('--mode <mode>', 'which mode to clean up').choices(['ipvs', 'nftables', 'all']).makeOptionMandatory(),
    )
    .option('--state-dir <dir>', 'applier state directory (ipvs ownership record)', '/var/lib/switchboard')
    .option('--node <name>', 'node name the applier ran as (names the ipvs ownership record)', hostname())
    .option('--netns <name>', 'operate inside this network namespace (nftables)')
    .option('--json', 'print a JSON report')
    .action(
      async (o: {
        mode: 'ipvs' | 'nftables' | 'all';
        stateDir: string;
        node: string;
        netns?: string;
        json?: boolean;
      }) => {
        const modes: CleanupMode[] = o.mode === 'all' ? ['nftables', 'ipvs'] : [o.mode];
        // before anything is taken or removed (`--mode all --netns` used to clean the nftables
        // table and then stop at ipvs)
        if (o.netns !== undefined && o.mode !== 'nftables')
          throw new UsageError(`--netns is supported for --mode nftables only, not --mode ${o.mode}`);
        // refused while this node's applier runs, or another's in that namespace: it would program
        // again what this removes (node-lock.ts)
        const nodeLock = await takeNodeLock(o.stateDir, o.node, 'cleanup', o.netns);
        for (const note of nodeLock.notes) process.stderr.write(`warning: ${note}\n`);
        const reports = await cleanupModes(modes, { stateDir: o.stateDir, node: o.node, netns: o.netns }).finally(() =>
          nodeLock.release(),
        );
        if (o.json) process.stdout.write(JSON.stringify(reports) + '\n');
        else
          for (const r of reports) {
            if (r.error) process.stderr.write(`switchboard: cleanup ${r.mode}: ${r.error}\n`);
            else
              process.stdout.write(
                `cleanup ${r.mode}: ${r.result!.kernelWrites} kernel writes${r.result!.notes.length ? ` (${r.result!.notes.join('; ')})` : ''}\n`,
              );
          }
        setExit(reports.some((r) => r.error) ? 1 : 0);
      },
    );
}
