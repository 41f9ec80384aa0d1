import type { NodeState, ProxyMode } from '../model/index.ts';
import type {
  ApplyResult,
  Dataplane,
  DataplaneMode,
  NodeStateChange,
  ResyncOptions,
  RetireResult,
} from './dataplane.ts';
import { NOTHING_VERIFIED } from './dataplane.ts';
import { ModeSwitchError, switchMode } from './switch-mode.ts';

export interface ModeFollowingOptions {
  /** Opens the dataplane of one mode (in the caller's network namespace). */
  open(mode: ProxyMode): Promise<Dataplane>;
  /** False where this kernel has no IPVS (or no dummy device): ipvs requests fall back to nftables. */
  readonly ipvsAvailable: boolean;
  readonly ipvsUnavailableReason?: string;
  readonly log?: (msg: string) => void;
  /**
   * Retire ipvs mode behind nftables while its connections drain (default true). False: remove it at
   * once, as a one-shot apply must (no later resync would finish the drain).
   */
  readonly drain?: boolean;
  /**
   * Told what the retiring mode still holds whenever that changes (the applier's node warnings, so
   * `ctl status` and the console show it), and undefined once it is removed or taken up again.
   */
  readonly onDrain?: (text: string | undefined) => void;
  /**
   * How often the retiring mode's drain moves on by itself (ms; default 30 000; 0: only at resyncs),
   * so that it ends soon after its last connection whatever `--resync-interval` is (0: never).
   */
  readonly drainStepMs?: number;
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
 *
 * ipvs → nftables keeps the connections IPVS made: ipvs mode retires (Dataplane.retire: its TCP
 * endpoints at weight 0, kept until their connections close or the drain timeout passes) rather
 * than going at once, and every resync moves the drain on until it is removed. A restart or a
 * failed switch finds its leftovers the same way (the drain's start is in ipvs mode's ownership
 * record), and a switch back to ipvs while it drains takes up the draining dataplane.
 */
export class ModeFollowingDataplane implements Dataplane {
  private current: Dataplane | undefined;
  /** The other mode may still hold state (a switch failed while removing it): remove it next apply. */
  private leftover: ProxyMode | undefined;
  /** The old mode, retiring behind `current` while its connections drain. */
  private retiring: Dataplane | undefined;
  /** The last state `current` was given: what a retiring mode retires behind. */
  private lastState: NodeState | undefined;
  /** The drain step in flight (a resync's or the timer's): one at a time, and awaited before the retiring mode is touched. */
  private drainStep: Promise<{ kernelWrites: number; notes: string[] } | undefined> | undefined;
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  /** The retiring mode's connection count last said, so a drain is logged when it moves. */
  private saidConnections: number | undefined;

  constructor(private readonly options: ModeFollowingOptions) {}

  get mode(): DataplaneMode {
    return this.current?.mode ?? (this.options.ipvsAvailable ? 'ipvs' : 'nftables');
  }

  get draining(): DataplaneMode | undefined {
    return this.retiring?.mode;
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
      this.lastState = state;
      const other: ProxyMode | undefined =
        want === 'ipvs' ? 'nftables' : this.options.ipvsAvailable ? 'ipvs' : undefined;
      if (other) await this.removeLeftovers(other, state, notes);
      return { ...r, notes: [...notes, ...r.notes] };
    }
    if (this.current.mode === want) {
      const r = await this.current.apply(state, change);
      this.lastState = state;
      const other = this.leftover;
      if (other && r.verified) {
        // what a failed switch may have left of the other mode goes once this mode verified
        const gone = await this.removeLeftovers(other, state, notes);
        if (gone) this.leftover = undefined;
        return { ...r, verified: gone, notes: [...notes, ...r.notes] };
      }
      return notes.length ? { ...r, notes: [...notes, ...r.notes] } : r;
    }
    const from = this.current;
    await this.drainStep; // not beside a step of the drain: the retiring mode may be taken up
    // a switch back to the mode that is still retiring takes it up: its state is there, in part
    const resumed = this.retiring?.mode === want ? this.retiring : undefined;
    this.endDrain();
    const to = resumed ?? (await this.options.open(want));
    // a retiring mode that cannot be taken up again retires on (what held it still does)
    let retiredAgain: RetireResult | undefined;
    const undo = resumed?.retire
      ? async () => {
          retiredAgain = await resumed.retire!(this.lastState ?? state);
        }
      : undefined;
    let res;
    try {
      res = await switchMode({ from, to, state, drain: this.options.drain !== false, undo });
      this.lastState = state;
    } catch (e) {
      if (e instanceof ModeSwitchError && e.newModeServing) {
        // The old mode's removal ran (in part or whole): the node is in the new mode now. It is
        // the current dataplane from here on, so the failure is reported against it and its
        // next apply (the retry, or a rollback's switch back) repairs the node from there.
        this.current = to;
        this.lastState = state;
        this.leftover = from.mode as ProxyMode;
        await from.close().catch(() => undefined);
        throw e;
      }
      if (retiredAgain?.verified && !retiredAgain.removed) this.startDrain(to, retiredAgain.connections);
      else await to.close().catch(() => undefined);
      throw e; // switchMode left the old mode serving; the applier NACKs and keeps it
    }
    this.leftover = undefined;
    this.current = to;
    const switched = `switched ${from.mode} → ${to.mode}`;
    if (res.draining) notes.push(this.startDrain(from, (res.removed as RetireResult).connections));
    else await from.close().catch(() => undefined);
    this.options.log?.(`${switched} in ${res.durationMs.toFixed(0)} ms`);
    return {
      kernelWrites: res.applied.kernelWrites + res.removed.kernelWrites + res.recheck.kernelWrites,
      verified: res.applied.verified && res.removed.verified && res.recheck.verified,
      durationMs: performance.now() - t0,
      notes: [...notes, switched, ...res.applied.notes],
    };
  }

  async resync(options?: ResyncOptions): Promise<ApplyResult> {
    if (!this.current) return { kernelWrites: 0, verified: false, durationMs: 0, notes: [NOTHING_VERIFIED] };
    // the drain first, so the resync below also proves that its writes left the serving mode alone
    const drained = await this.stepDrain();
    // a step that wrote is reported with this resync's result: it no longer gives way
    const r = await this.current.resync(drained && drained.kernelWrites > 0 ? undefined : options);
    if (!drained) return r;
    return {
      ...r,
      kernelWrites: r.kernelWrites + drained.kernelWrites,
      // the drain's writes are its schedule, not a repair of drift
      scheduledWrites: (r.scheduledWrites ?? 0) + drained.kernelWrites,
      notes: [...r.notes, ...drained.notes],
    };
  }

  /** One step of the drain, or the one in flight; undefined when nothing retires. */
  private stepDrain(): Promise<{ kernelWrites: number; notes: string[] } | undefined> {
    if (this.drainStep) return this.drainStep;
    const dp = this.retiring;
    const state = this.lastState;
    if (!dp || !state) return Promise.resolve(undefined);
    const step = this.moveDrainOn(dp, state).finally(() => {
      this.drainStep = undefined;
    });
    this.drainStep = step;
    return step;
  }

  /** `dp` retires from now on, its drain moved on by resyncs and by its own timer; returns the line said. */
  private startDrain(dp: Dataplane, connections: number): string {
    this.retiring = dp;
    this.scheduleDrainStep();
    return this.sayDrain(dp.mode, connections);
  }

  private scheduleDrainStep(): void {
    clearTimeout(this.drainTimer);
    const every = this.options.drainStepMs ?? 30_000;
    if (!this.retiring || every <= 0) return;
    this.drainTimer = setTimeout(() => {
      void this.stepDrain().then(() => this.scheduleDrainStep());
    }, every);
    this.drainTimer.unref?.();
  }

  /**
   * One step of the retiring mode's drain. A failure is a note (and said): the serving mode is
   * not at fault, and the next step (the timer's or a resync's) tries again.
   */
  private async moveDrainOn(dp: Dataplane, state: NodeState): Promise<{ kernelWrites: number; notes: string[] }> {
    try {
      const r = await dp.retire!(state);
      if (this.retiring !== dp) return { kernelWrites: r.kernelWrites, notes: [] }; // closed meanwhile
      if (r.removed) {
        this.endDrain();
        await dp.close().catch(() => undefined);
        const line = `${dp.mode} mode removed: its connections are closed or past the drain timeout`;
        this.options.log?.(line);
        return { kernelWrites: r.kernelWrites, notes: [line] };
      }
      const notes = r.verified ? [] : [`${dp.mode} mode did not verify while retiring: ${r.notes.join('; ')}`];
      if (r.connections !== this.saidConnections) notes.push(this.sayDrain(dp.mode, r.connections));
      return { kernelWrites: r.kernelWrites, notes };
    } catch (e) {
      const line = `${dp.mode} mode retiring failed (tried again at its next step): ${(e as Error).message}`;
      this.options.log?.(line);
      return { kernelWrites: 0, notes: [line] };
    }
  }

  /** Says how many connections keep the retiring mode (the caller says it once per count); returns the line. */
  private sayDrain(mode: DataplaneMode, connections: number): string {
    this.saidConnections = connections;
    const line = `${mode} mode kept for ${connections} established connection(s) until they close (at most the drain timeout)`;
    this.options.log?.(line);
    this.options.onDrain?.(`${line}: ${mode} still programmed behind ${this.current?.mode ?? 'the serving mode'}`);
    return line;
  }

  /**
   * Removes what `mode` owns (opened for that alone); whether its removal verified. A mode that can
   * retire (ipvs) retires behind `state` instead, and stays open, retiring, while connections hold it.
   */
  private async removeLeftovers(mode: ProxyMode, state: NodeState, notes: string[]): Promise<boolean> {
    const dp = await this.options.open(mode);
    let keep = false;
    try {
      if (dp.retire && this.options.drain !== false) {
        const r = await dp.retire(state);
        if (r.kernelWrites > 0)
          notes.push(`${r.removed ? 'removed' : 'retired'} ${r.kernelWrites} leftovers of ${mode} mode`);
        if (!r.verified) notes.push(`${mode} mode did not verify while retiring: ${r.notes.join('; ')}`);
        if (r.verified && !r.removed) {
          keep = true;
          notes.push(this.startDrain(dp, r.connections));
        }
        return r.verified;
      }
      const c = await dp.cleanup();
      if (c.kernelWrites > 0) notes.push(`removed ${c.kernelWrites} leftovers of ${mode} mode`);
      if (!c.verified) notes.push(`${mode} mode left state behind: ${c.notes.join('; ')}`);
      return c.verified;
    } finally {
      if (!keep) await dp.close();
    }
  }

  /** The retiring mode is no longer retiring (removed, taken up again, or being removed). */
  private endDrain(): void {
    if (this.retiring) this.options.onDrain?.(undefined);
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.retiring = undefined;
    this.saidConnections = undefined;
  }

  async cleanup(): Promise<ApplyResult> {
    await this.drainStep;
    const retiring = this.retiring;
    this.endDrain();
    const old = retiring ? await retiring.cleanup().finally(() => retiring.close().catch(() => undefined)) : undefined;
    if (!this.current) return old ?? { kernelWrites: 0, verified: true, durationMs: 0, notes: [] };
    const r = await this.current.cleanup();
    if (!old) return r;
    return {
      ...r,
      kernelWrites: r.kernelWrites + old.kernelWrites,
      verified: r.verified && old.verified,
      notes: [...old.notes, ...r.notes],
    };
  }

  async close(): Promise<void> {
    clearTimeout(this.drainTimer);
    await this.drainStep;
    const retiring = this.retiring;
    this.retiring = undefined; // closed, not ended: a restarted applier drains on from the kernel
    clearTimeout(this.drainTimer); // one the step in flight may have set as it ended
    await retiring?.close().catch(() => undefined);
    await this.current?.close();
  }
}
