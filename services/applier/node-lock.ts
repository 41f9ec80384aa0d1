// One process programs a node's kernel at a time: the applier, `apply --once` and `cleanup` take
// the node's lock in the state directory (a hostPath in the DaemonSet, so it holds across pods).
//
// Two appliers on one node (a second one started by hand, a unit file left beside the DaemonSet,
// an `apply --once` while the applier runs) each program the kernel from their own target: one
// takes a version the other has not yet seen, the other's resync puts the older one back, and both
// ACK. The planner names such twins (`two appliers report as NODE`), but only once both have
// reported; the lock refuses the second before it touches the kernel. The kernel frees it when the
// holder dies, kill -9 included (libs/locks/process-lock.ts), so a crashed applier never blocks its
// successor.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { tryProcessLock, type ProcessLock } from '../../libs/locks/index.ts';

/** The lock file of `node` in `stateDir`. */
export const nodeLockFile = (stateDir: string, node: string): string =>
  path.join(stateDir, `node-${node.replace(/[^A-Za-z0-9_.-]/g, '_')}.lock`);

/** Takes the node's lock for `purpose` (`applier`, `apply --once`, `cleanup`); throws, one line, when held. */
export function takeNodeLock(stateDir: string, node: string, purpose: string): ProcessLock {
  const file = nodeLockFile(stateDir, node);
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (e) {
    throw new Error(`${stateDir}: cannot create the state directory: ${(e as Error).message}`);
  }
  const attempt = tryProcessLock(file, `${purpose} of node ${node}`);
  if ('heldBy' in attempt)
    throw new Error(
      `node ${node} is programmed by another process (${attempt.heldBy}; lock ${file}): stop it first, one process per node`,
    );
  return attempt.lock;
}
