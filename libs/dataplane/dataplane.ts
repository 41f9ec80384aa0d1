import type { NodeState, VirtualServer } from '../model/index.ts';

/** Which dataplane is programming this node. 'dry-run' runs the full protocol but never the kernel. */
export type DataplaneMode = 'ipvs' | 'nftables' | 'dry-run';

export interface ApplyResult {
  /** Kernel write operations performed (0 for a no-op apply or resync). */
  readonly kernelWrites: number;
  /** Read-back after applying matched the desired state. */
  readonly verified: boolean;
  readonly durationMs: number;
  /** Human-readable notes (fallbacks, drained real servers pending, ...). */
  readonly notes: readonly string[];
  /**
   * Of kernelWrites, those that carried out the dataplane's own schedule rather than repair
   * anything: deleting real servers whose drain, started by an earlier cycle, has ended (ipvs
   * mode). A resync's writes beyond these repaired drift. Absent: none.
   */
  readonly scheduledWrites?: number;
}

/**
 * The note of a resync() with no verified state to compare the kernel with (nothing applied, or
 * nothing that read back right): it answers verified: false, since it checked nothing.
 */
export const NOTHING_VERIFIED = 'nothing applied and verified yet: no state to compare the kernel with';

/** How a resync() may be asked to give way (see Dataplane.resync). */
export interface ResyncOptions {
  /**
   * Fired when something more urgent than this resync is waiting (an apply of a new version): a
   * resync that has written nothing yet may stop reading and throw ResyncYielded. Ignored once
   * a repair has begun, and by dataplanes whose reads are short (they finish instead).
   */
  readonly yieldTo?: AbortSignal;
}

/**
 * What a resync() throws when it gave way to `yieldTo` before writing anything: it compared
 * nothing and changed nothing, so it says nothing about the kernel; the caller runs what it gave
 * way to and resyncs again.
 */
export class ResyncYielded extends Error {
  constructor(readonly afterMs: number) {
    super(`resync gave way after ${Math.round(afterMs)} ms, before it wrote anything`);
    this.name = 'ResyncYielded';
  }
}

/**
 * What a resync's read that failed with `e` throws: ResyncYielded when `yieldTo` fired (the read
 * stopped to give way; `since`: when the resync began, performance.now()), else `e` itself.
 */
export function gaveWayOr(e: unknown, yieldTo: AbortSignal | undefined, since: number): unknown {
  return yieldTo?.aborted ? new ResyncYielded(performance.now() - since) : e;
}

/**
 * How a NodeState differs from the one it was made from, in its virtual servers, when its producer
 * knows (the incremental renderer, NodeStateRenderer.changeOf): a dataplane that last applied
 * exactly `previous` need not compare every service to find the few that changed. Optional
 * everywhere: without it (or for another `previous`) a dataplane finds the change itself.
 * The producer vouches that every service not named here is the same object in both states.
 */
export interface NodeStateChange {
  /** The state this one was made from, by identity. */
  readonly previous: NodeState;
  /** Services added or replaced since `previous`: the new state's objects. */
  readonly virtualServers: readonly VirtualServer[];
  /** Keys (virtualServerKey) of the services `previous` had and the new state has not. */
  readonly removedVirtualServers: readonly string[];
}

/**
 * The seam between the applier and the kernel. Implementations own only what they created
 * (recorded ownership), never touch foreign objects, and are idempotent: applying the same state
 * twice performs zero kernel writes the second time.
 */
export interface Dataplane {
  readonly mode: DataplaneMode;
  /**
   * Programs `state` with the minimal set of operations, then reads back and verifies. `change`,
   * when given, says how `state` differs from `change.previous` (a hint that saves work; the
   * result must be the same without it).
   */
  apply(state: NodeState, change?: NodeStateChange): Promise<ApplyResult>;
  /**
   * Re-reads the kernel and repairs drift against the last state an apply verified (NOTHING_VERIFIED,
   * unverified, when there is none). A whole read of a large table takes seconds (nftables at 10k
   * services: ~5 s here); `options.yieldTo` lets an apply that arrives meanwhile go first.
   */
  resync(options?: ResyncOptions): Promise<ApplyResult>;
  /** Removes everything this dataplane owns (mode switch, `switchboard cleanup`). */
  cleanup(): Promise<ApplyResult>;
  close(): Promise<void>;
  /**
   * Where a mode switch keeps the old mode's state for established connections (ipvs behind
   * nftables: ModeFollowingDataplane), that old mode until it is removed. What it still holds is
   * ours, not kube-proxy's, to the leftover check and the take-over.
   */
  readonly draining?: DataplaneMode;
  /**
   * Optional (ipvs mode): stop taking new connections but keep those made, for a mode switch away
   * from this mode (another mode serves `state` now). Each call moves the drain on; the mode's
   * state is removed, as by cleanup(), once no connection is left or the drain timeout passed.
   */
  retire?(state: NodeState): Promise<RetireResult>;
}

/** What a retire() left. */
export interface RetireResult extends ApplyResult {
  /** Nothing of the mode is left (verified, as a cleanup()). */
  readonly removed: boolean;
  /** Connections (active + inactive) still held by the mode's draining endpoints; 0 once removed. */
  readonly connections: number;
}
