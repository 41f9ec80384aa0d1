import type { NodeState } from '../model/index.ts';
import type { ApplyResult, Dataplane } from './dataplane.ts';

/**
 * Full protocol, kernel untouched: remembers the last state so scale tests and demos can assert
 * what would have been programmed.
 */
export class DryRunDataplane implements Dataplane {
  readonly mode = 'dry-run' as const;
  last: NodeState | undefined;
  applies = 0;

  async apply(state: NodeState): Promise<ApplyResult> {
    const t = performance.now();
    this.last = state;
    this.applies++;
    return { kernelWrites: 0, verified: true, durationMs: performance.now() - t, notes: [] };
  }

  async resync(): Promise<ApplyResult> {
    return { kernelWrites: 0, verified: true, durationMs: 0, notes: [] };
  }

  async cleanup(): Promise<ApplyResult> {
    this.last = undefined;
    return { kernelWrites: 0, verified: true, durationMs: 0, notes: [] };
  }

  async close(): Promise<void> {}
}
