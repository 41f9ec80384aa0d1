import type { NodeState, ProxyMode } from '../model/index.ts';
import type { ApplyResult, Dataplane, DataplaneMode, NodeStateChange } from './dataplane.ts';
import { NOTHING_VERIFIED } from './dataplane.ts';
import { ModeSwitchError, switchMode } from './switch-mode.ts';

export interface ModeFollowingOptions {
  /** Opens the dataplane of one mode (in the caller's network namespace). */
  open(mode: ProxyMode): Promise<Dataplane>;
  /** False where this kernel has no IPVS (or no dummy device): ipvs requests fall back to nftables. */
  readonly ipvsAvailable: boolean;
  readonly ipvsUnavailableReason?: string;
  readonly log?: (msg: string) => void;
}

/** IPVS schedulers whose choice is a promise about who gets which endpoint. */
const HASHING_SCHEDULERS = new Map([
  ['sh', 'source hashing: a client keeps one endpoint'],
  ['mh', 'Maglev hashing: a client keeps one endpoint'],
  ['dh', 'destination hashing'],
]);

/**
 * The dataplane of `applier --mode auto`: it programs whichever mode the node state's proxy
 * config asks for (so `ctl mode` rollouts and rollbacks switch nodes wave by wave), falling back
 * to nftables where IPVS is missing, and switches make-before-break with switchMode. On its
 * first apply it also removes what the other mode may have left (an applier restarted mid-switch),
 * and so does the first apply after a switch that failed once the old mode's removal had begun.
 */
export class ModeFollowingDataplane implements Dataplane {
  private current: Dataplane | undefined;
  /** The other mode may still hold state (a switch failed while removing it): remove it next apply. */
  private leftover: ProxyMode | undefined;

  constructor(private readonly options: ModeFollowingOptions) {}

  get mode(): DataplaneMode {
    return this.current?.mode ?? (this.options.ipvsAvailable ? 'ipvs' : 'nftables');
  }

  async apply(state: NodeState, change?: NodeStateChange): Promise<ApplyResult> {
    const t0 = performance.now();
    const asked = state.settings.mode ?? 'ipvs';
    const notes: string[] = [];
    let want: ProxyMode = asked;
    if (asked === 'ipvs' && !this.options.ipvsAvailable) {
      // Hashing schedulers promise that a client (sh, mh) or destination (dh) keeps one endpoint;
      // nftables mode balances at random, so falling back would silently break that promise.
      const hashed = state.virtualServers.find((vs) => HASHING_SCHEDULERS.has(vs.scheduler));
      if (hashed) {
        throw new Error(
          `config asks for ipvs scheduler ${hashed.scheduler} (${HASHING_SCHEDULERS.get(hashed.scheduler)}) but ${this.options.ipvsUnavailableReason ?? 'IPVS is unavailable here'}; nftables balances at random and cannot keep that promise`,
        );
      }
      want = 'nftables';
      notes.push(
        `config asks for ipvs but ${this.options.ipvsUnavailableReason ?? 'IPVS is unavailable here'}; running nftables`,
      );
    }
    if (!this.current) {
      this.current = await this.options.open(want);
      const r = await this.current.apply(state);
      const other: ProxyMode | undefined =
        want === 'ipvs' ? 'nftables' : this.options.ipvsAvailable ? 'ipvs' : undefined;
      if (other) await this.removeLeftovers(other, notes);
      return { ...r, notes: [...notes, ...r.notes] };
    }
    if (this.current.mode === want) {
      const r = await this.current.apply(state, change);
      const other = this.leftover;
      if (other && r.verified) {
        // what a failed switch may have left of the other mode goes once this mode verified
        const gone = await this.removeLeftovers(other, notes);
        if (gone) this.leftover = undefined;
        return { ...r, verified: gone, notes: [...notes, ...r.notes] };
      }
      return notes.length ? { ...r, notes: [...notes, ...r.notes] } : r;
    }
    const from = this.current;
    const to = await this.options.open(want);
    let res;
    try {
      res = await switchMode({ from, to, state });
    } catch (e) {
      if (e instanceof ModeSwitchError && e.newModeServing) {
        // The old mode's removal ran (in part or whole): the node is in the new mode now. It is
        // the current dataplane from here on, so the failure is reported against it and its
        // next apply (the retry, or a rollback's switch back) repairs the node from there.
        this.current = to;
        this.leftover = from.mode as ProxyMode;
        await from.close().catch(() => undefined);
        throw e;
      }
      await to.close().catch(() => undefined);
      throw e; // switchMode left the old mode serving; the applier NACKs and keeps it
    }
    this.leftover = undefined;
    this.current = to;
    await from.close().catch(() => undefined);
    this.options.log?.(`switched ${from.mode} → ${to.mode} in ${res.durationMs.toFixed(0)} ms`);
    return {
      kernelWrites: res.applied.kernelWrites + res.removed.kernelWrites + res.recheck.kernelWrites,
      verified: res.applied.verified && res.removed.verified && res.recheck.verified,
      durationMs: performance.now() - t0,
      notes: [...notes, `switched ${from.mode} → ${to.mode}`, ...res.applied.notes],
    };
  }

  async resync(): Promise<ApplyResult> {
    if (!this.current) return { kernelWrites: 0, verified: false, durationMs: 0, notes: [NOTHING_VERIFIED] };
    return this.current.resync();
  }

  /** Removes what `mode` owns (opened for that alone); whether its removal verified. */
  private async removeLeftovers(mode: ProxyMode, notes: string[]): Promise<boolean> {
    const dp = await this.options.open(mode);
    try {
      const c = await dp.cleanup();
      if (c.kernelWrites > 0) notes.push(`removed ${c.kernelWrites} leftovers of ${mode} mode`);
      if (!c.verified) notes.push(`${mode} mode left state behind: ${c.notes.join('; ')}`);
      return c.verified;
    } finally {
      await dp.close();
    }
  }

  async cleanup(): Promise<ApplyResult> {
    if (!this.current) return { kernelWrites: 0, verified: true, durationMs: 0, notes: [] };
    return this.current.cleanup();
  }

  async close(): Promise<void> {
    await this.current?.close();
  }
}
