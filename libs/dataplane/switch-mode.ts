import type { NodeState } from '../model/index.ts';
import type { ApplyResult, Dataplane } from './dataplane.ts';

export interface SwitchModeOptions {
  /** The dataplane programming the node now; removed only once `to` is verified. */
  readonly from: Dataplane;
  readonly to: Dataplane;
  readonly state: NodeState;
}

export interface SwitchModeResult {
  /** `to.apply(state)`. */
  readonly applied: ApplyResult;
  /** `from.cleanup()`. */
  readonly removed: ApplyResult;
  /** `to.resync()` after the old mode left: proves its removal did not disturb the new mode. */
  readonly recheck: ApplyResult;
  readonly durationMs: number;
}

export class ModeSwitchError extends Error {}

/**
 * Make-before-break mode switch on a live node. Both modes can be programmed at once (nftables
 * DNATs in prerouting before IPVS sees a packet at local-in, so new connections follow the new
 * mode as soon as it is loaded), so the order is: program and verify the new mode; only then
 * remove the old one; then resync the new one. If the new mode cannot be verified, it is removed
 * again and the old mode keeps serving untouched.
 */
export async function switchMode(o: SwitchModeOptions): Promise<SwitchModeResult> {
  const t0 = performance.now();
  if (o.from.mode === o.to.mode) throw new ModeSwitchError(`already in ${o.to.mode} mode`);
  let applied: ApplyResult;
  try {
    applied = await o.to.apply(o.state);
    if (!applied.verified) throw new ModeSwitchError(`${o.to.mode} mode did not verify: ${applied.notes.join('; ')}`);
  } catch (e) {
    await o.to.cleanup().catch(() => undefined); // best effort; the old mode was never touched
    throw e instanceof ModeSwitchError
      ? e
      : new ModeSwitchError(`${o.to.mode} mode failed to apply: ${(e as Error).message}`);
  }
  const removed = await o.from.cleanup();
  if (!removed.verified)
    throw new ModeSwitchError(`${o.from.mode} mode left state behind: ${removed.notes.join('; ')}`);
  const recheck = await o.to.resync();
  if (!recheck.verified)
    throw new ModeSwitchError(
      `${o.to.mode} mode drifted while ${o.from.mode} was removed: ${recheck.notes.join('; ')}`,
    );
  return { applied, removed, recheck, durationMs: performance.now() - t0 };
}
