import type { NodeState } from '../model/index.ts';
import type { ApplyResult, Dataplane } from './dataplane.ts';

export interface SwitchModeOptions {
  /** The dataplane programming the node now; removed only once `to` is verified. */
  readonly from: Dataplane;
  readonly to: Dataplane;
  readonly state: NodeState;
  /**
   * Retire the old mode (`from.retire`, where it has one) rather than remove it at once: it keeps
   * what established connections need, and later retire() calls remove it (ModeFollowingDataplane).
   */
  readonly drain?: boolean;
  /**
   * How to take back a new mode that did not verify (default `to.cleanup()`). A mode that was
   * retiring and is being taken up again retires again instead: its connections still need it.
   */
  readonly undo?: () => Promise<unknown>;
}

export interface SwitchModeResult {
  /** `to.apply(state)`. */
  readonly applied: ApplyResult;
  /** `from.cleanup()`, or `from.retire(state)` when draining. */
  readonly removed: ApplyResult;
  /** The old mode still holds established connections (`drain`): retire it again later. */
  readonly draining: boolean;
  /** `to.resync()` after the old mode left: proves its removal did not disturb the new mode. */
  readonly recheck: ApplyResult;
  readonly durationMs: number;
}

export class ModeSwitchError extends Error {
  /**
   * The new mode was verified and the old one's removal had begun when this failed: the node is
   * in the new mode now (it serves first: nftables DNATs in prerouting before IPVS sees a packet,
   * and either way the old mode may be partly gone), so the new mode is the one to repair.
   */
  readonly newModeServing: boolean;
  constructor(message: string, o: { newModeServing?: boolean } = {}) {
    super(message);
    this.newModeServing = o.newModeServing ?? false;
  }
}

/**
 * Make-before-break mode switch on a live node. Both modes can be programmed at once (nftables
 * DNATs in prerouting before IPVS sees a packet at local-in, so new connections follow the new
 * mode as soon as it is loaded), so the order is: program and verify the new mode; only then
 * remove the old one (or, with `drain`, retire it: see Dataplane.retire); then resync the new one.
 * If the new mode cannot be verified, it is removed
 * again and the old mode keeps serving untouched. Once the old mode's removal has begun there is
 * no going back untouched: a failure from there on (the removal, or the new mode's recheck)
 * throws with `newModeServing`, and the caller treats the node as in the new mode, which its
 * next apply repairs (ModeFollowingDataplane).
 */
export async function switchMode(o: SwitchModeOptions): Promise<SwitchModeResult> {
  const t0 = performance.now();
  if (o.from.mode === o.to.mode) throw new ModeSwitchError(`already in ${o.to.mode} mode`);
  let applied: ApplyResult;
  try {
    applied = await o.to.apply(o.state);
    if (!applied.verified) throw new ModeSwitchError(`${o.to.mode} mode did not verify: ${applied.notes.join('; ')}`);
  } catch (e) {
    // best effort; the old mode was never touched
    await (o.undo ? o.undo() : o.to.cleanup()).catch(() => undefined);
    throw e instanceof ModeSwitchError
      ? e
      : new ModeSwitchError(`${o.to.mode} mode failed to apply: ${(e as Error).message}`);
  }
  const serving = { newModeServing: true };
  let removed: ApplyResult;
  let draining = false;
  try {
    if (o.drain && o.from.retire) {
      const retired = await o.from.retire(o.state);
      draining = !retired.removed;
      removed = retired;
    } else removed = await o.from.cleanup();
  } catch (e) {
    throw new ModeSwitchError(`${o.from.mode} mode removal failed: ${(e as Error).message}`, serving);
  }
  if (!removed.verified)
    throw new ModeSwitchError(
      `${o.from.mode} mode ${draining ? 'did not verify while retiring' : 'left state behind'}: ${removed.notes.join('; ')}`,
      serving,
    );
  let recheck: ApplyResult;
  try {
    recheck = await o.to.resync();
  } catch (e) {
    throw new ModeSwitchError(`${o.to.mode} mode recheck failed: ${(e as Error).message}`, serving);
  }
  if (!recheck.verified)
    throw new ModeSwitchError(
      `${o.to.mode} mode drifted while ${o.from.mode} was removed: ${recheck.notes.join('; ')}`,
      serving,
    );
  return { applied, removed, draining, recheck, durationMs: performance.now() - t0 };
}
