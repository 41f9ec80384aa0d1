import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { ApplyResult, Dataplane } from './dataplane.ts';
import { DryRunDataplane } from './dry-run-dataplane.ts';
import { detectIpvsCapabilities } from './ipvs/detect-capabilities.ts';
import { IpvsDataplane } from './ipvs/ipvs-dataplane.ts';
import { NetlinkKernel } from './ipvs/netlink-kernel.ts';
import { FileOwnershipStore } from './ipvs/ownership-record.ts';
import { NftablesDataplane, type NftBackend } from './nftables/index.ts';
import { ModeFollowingDataplane } from './mode-following-dataplane.ts';

export type DataplaneChoice = 'ipvs' | 'nftables' | 'auto' | 'dry-run';

export interface CreateDataplaneOptions {
  readonly mode: DataplaneChoice;
  readonly node: string;
  /** Where the ipvs ownership record lives (default /var/lib/switchboard). */
  readonly stateDir?: string;
  readonly drainTimeoutMs?: number;
  readonly scheduler?: string;
  readonly registry?: Registry;
  readonly log?: (msg: string) => void;
  /** How nftables mode talks to the kernel (default `auto`: netlink, falling back to `nft`). */
  readonly nftBackend?: NftBackend;
  /**
   * nftables mode: keep a listener child for nf_tables' change notifications, so a resync after
   * the ruleset generation moved reads back only what changed (default true; ~50 MB RSS for the
   * child). Off: every such resync reads the whole table. One-shot applies need no listener.
   */
  readonly nftChangeNotifications?: boolean;
  /**
   * ipvs mode: net.ipv4.vs.run_estimation, IPVS's rate estimators on (true) or off (false);
   * undefined (the default) leaves the kernel's setting alone. docs/applier-ipvs.md "Rate estimation".
   */
  readonly ipvsRateEstimation?: boolean;
  /**
   * Runs before a dataplane of that mode is made (also when `auto` switches to it) and throws when
   * the node cannot run it; the applier passes refuseUnfitNode (node-preflight.ts). None: no check.
   */
  readonly preflight?: (mode: 'ipvs' | 'nftables') => Promise<void>;
  /**
   * nftables mode: called (why) when change notifications say our table or a base chain was
   * deleted (NftablesDataplaneOptions.onDrift); the applier resyncs at once.
   */
  readonly onDrift?: (why: string) => void;
  /** nftables mode: the change-notification listener down (why) or running again (undefined); NftablesDataplaneOptions. */
  readonly onListenerState?: (down: string | undefined) => void;
  /**
   * auto: keep ipvs mode for its established connections after a switch to nftables (default true;
   * ModeFollowingOptions.drain). A one-shot apply passes false: nothing would finish the drain.
   */
  readonly modeSwitchDrain?: boolean;
  /** auto: what the retiring mode still holds (ModeFollowingOptions.onDrain), undefined once it is gone. */
  readonly onModeDrain?: (text: string | undefined) => void;
  /** nftables mode: a lost listener was restarted, resync now (it reads the whole table); NftablesDataplaneOptions. */
  readonly onResyncWanted?: (why: string) => void;
}

export const DEFAULT_STATE_DIR = '/var/lib/switchboard';

/** The ownership-record file of one node (per network namespace: one applier per node netns). */
export function ipvsStatePath(stateDir: string, node: string): string {
  return join(stateDir, `ipvs-${node.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
}

/**
 * Builds the dataplane for a mode. `auto` follows the mode of the proxy config it is given
 * (ModeFollowingDataplane), using nftables where this namespace lacks IPVS or dummy devices — and
 * says so (log, and a note on every ApplyResult).
 * Must be called in the network namespace to program: netlink sockets bind to the caller's.
 */
export async function createDataplane(o: CreateDataplaneOptions): Promise<Dataplane> {
  if (o.mode === 'dry-run') return new DryRunDataplane();
  if (o.mode === 'nftables') {
    await o.preflight?.('nftables');
    return new NftablesDataplane({
      backend: o.nftBackend,
      changeNotifications: o.nftChangeNotifications,
      onDrift: o.onDrift,
      onListenerState: o.onListenerState,
      onResyncWanted: o.onResyncWanted,
    });
  }
  const caps = await detectIpvsCapabilities({ scheduler: o.scheduler });
  const ipvsOk = caps.ipvs && caps.dummy;
  if (o.mode === 'auto') {
    // auto follows the proxy config's mode (so `ctl mode` rollouts switch nodes) and falls back to
    // nftables where this kernel cannot do ipvs; the reason goes into the notes of every apply.
    if (!ipvsOk) o.log?.(`auto: ipvs unavailable (${caps.notes.join('; ')}); nftables only`);
    return new ModeFollowingDataplane({
      ipvsAvailable: ipvsOk,
      ipvsUnavailableReason: `ipvs is unavailable (${caps.notes.join('; ')})`,
      open: (mode) => createDataplane({ ...o, mode }),
      log: o.log,
      drain: o.modeSwitchDrain,
      onDrain: o.onModeDrain,
    });
  }
  if (!ipvsOk) throw new Error(`ipvs mode unavailable: ${caps.notes.join('; ')}`);
  await o.preflight?.('ipvs');
  for (const n of caps.notes) o.log?.(n);
  return new IpvsDataplane({
    kernel: await NetlinkKernel.open(),
    store: new FileOwnershipStore(ipvsStatePath(o.stateDir ?? DEFAULT_STATE_DIR, o.node)),
    drainTimeoutMs: o.drainTimeoutMs,
    rateEstimation: o.ipvsRateEstimation,
    registry: o.registry,
    log: o.log,
  });
}

/** Adds fixed notes (e.g. why auto fell back) to every result of a dataplane. */
export function withNotes(dp: Dataplane, notes: readonly string[]): Dataplane {
  const add = async (p: Promise<ApplyResult>): Promise<ApplyResult> => {
    const r = await p;
    return { ...r, notes: [...notes, ...r.notes] };
  };
  return {
    mode: dp.mode,
    get draining() {
      return dp.draining;
    },
    apply: (s, change) => add(dp.apply(s, change)),
    resync: (o) => add(dp.resync(o)),
    cleanup: () => add(dp.cleanup()),
    close: () => dp.close(),
  };
}
