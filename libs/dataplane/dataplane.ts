import type { NodeState } from '../model/index.ts';

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
}

/**
 * The seam between the applier and the kernel. Implementations own only what they created
 * (recorded ownership), never touch foreign objects, and are idempotent: applying the same state
 * twice performs zero kernel writes the second time.
 */
export interface Dataplane {
  readonly mode: DataplaneMode;
  /** Programs `state` with the minimal set of operations, then reads back and verifies. */
  apply(state: NodeState): Promise<ApplyResult>;
  /** Re-reads the kernel and repairs drift against the last applied state. */
  resync(): Promise<ApplyResult>;
  /** Removes everything this dataplane owns (mode switch, `switchboard cleanup`). */
  cleanup(): Promise<ApplyResult>;
  close(): Promise<void>;
}
