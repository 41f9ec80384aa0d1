// One process programs a node's kernel at a time: the applier, `apply --once` and `cleanup` take
// the node's lock in the state directory (a hostPath in the DaemonSet, so it holds across pods),
// and the lock of the network namespace they program, beside it.
//
// Two appliers on one node (a second one started by hand, a unit file left beside the DaemonSet,
// an `apply --once` while the applier runs) each program the kernel from their own target: one
// takes a version the other has not yet seen, the other's resync puts the older one back, and both
// ACK. The planner names such twins (`two appliers report as NODE`), but only once both have
// reported; the lock refuses the second before it touches the kernel. The kernel frees it when the
// holder dies, kill -9 included (libs/locks/process-lock.ts), so a crashed applier never blocks its
// successor.
//
// Two locks, because a node has two names for what it owns:
// - the node's name keys its files in the state directory (applied-NODE.json, the ipvs ownership
//   record), so the node lock keeps two processes of one name apart;
// - the kernel state (the IPVS services, ipsets and kube-ipvs0, or the one nftables table) belongs
//   to a network namespace, whatever node name a process was given: a unit file that defaults
//   --node to the host name (`node-1`) beside a DaemonSet that uses the Kubernetes name
//   (`node-1.example.internal`) took two node locks and fought over one table. The namespace
//   lock is keyed by the namespace's inode (the number in `readlink /proc/PID/ns/net`,
//   `net:[INODE]`), the same for every process in it, a hostNetwork pod's included.
//
// Lock files keep apart only processes that share the state directory. A process that programs
// its own namespace also claims an abstract unix socket name there (NAMESPACE_CLAIM,
// libs/locks/abstract-name-claim.ts), which every process in the namespace sees whatever its
// files: a unit file given another --state-dir beside a DaemonSet pod is refused too. A holder
// that is neither root nor this process's uid is ignored with a note (anyone may bind the name
// first; such a process cannot program the kernel state). A command that programs another named
// namespace (`cleanup --netns`) relies on the files alone: the name lives inside that namespace.

import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { claimAbstractName, tryProcessLock, type ProcessLock } from '../../libs/locks/index.ts';

/** The abstract unix socket name a process that programs its network namespace claims there. */
export const NAMESPACE_CLAIM = 'switchboard/programs-this-network-namespace';

/** The node's locks; `notes`: a claim holder that was ignored, to be logged. */
export interface NodeLock extends ProcessLock {
  readonly notes: readonly string[];
}

/** The lock file of `node` in `stateDir`. */
export const nodeLockFile = (stateDir: string, node: string): string =>
  path.join(stateDir, `node-${node.replace(/[^A-Za-z0-9_.-]/g, '_')}.lock`);

/** The lock file of the network namespace with inode `inode` in `stateDir`. */
export const netnsLockFile = (stateDir: string, inode: number): string => path.join(stateDir, `netns-${inode}.lock`);

/**
 * The inode of the network namespace a command programs: the one `ip netns` calls `netns`
 * (/run/netns/NAME), or this process's own. Throws, one line, when the named one does not exist.
 */
export function networkNamespaceInode(netns?: string): number {
  const file = netns === undefined ? '/proc/self/ns/net' : path.join('/run/netns', netns);
  try {
    return statSync(file).ino;
  } catch (e) {
    if (netns !== undefined)
      throw new Error(`network namespace ${netns}: not found (${file}: ${(e as NodeJS.ErrnoException).code})`);
    throw new Error(`cannot tell this process's network namespace (${file}): ${(e as Error).message}`);
  }
}

/**
 * Takes the node's lock alone, for a process that keeps the node's files but programs no kernel (a
 * dry-run applier given --state-dir: it writes applied-NODE.json, and ACKs as the node); throws,
 * one line naming the holder, when it is held.
 */
export function takeNodeFilesLock(stateDir: string, node: string, purpose: string): ProcessLock {
  try {
    mkdirSync(stateDir, { recursive: true });
  } catch (e) {
    throw new Error(`${stateDir}: cannot create the state directory: ${(e as Error).message}`);
  }
  const file = nodeLockFile(stateDir, node);
  const attempt = tryProcessLock(file, `${purpose} of node ${node}`);
  if ('heldBy' in attempt)
    throw new Error(
      `node ${node} is programmed by another process (${attempt.heldBy}; lock ${file}): stop it first, one process per node`,
    );
  return attempt.lock;
}

/**
 * Takes the node's lock and its network namespace's (`netns`: the `ip netns` name the command
 * programs; default this process's, which is then also claimed by name: NAMESPACE_CLAIM) for
 * `purpose` (`applier`, `apply --once`, `cleanup`); throws, one line naming the holder, when any
 * is held. Releasing the result releases all. `claimName`: tests use their own.
 */
export async function takeNodeLock(
  stateDir: string,
  node: string,
  purpose: string,
  netns?: string,
  claimName = NAMESPACE_CLAIM,
): Promise<NodeLock> {
  const files = takeNodeLockFiles(stateDir, node, purpose, netns);
  if (netns !== undefined) return { release: () => files.release(), notes: [] };
  let claim: Awaited<ReturnType<typeof claimAbstractName>>;
  try {
    claim = await claimAbstractName(claimName, `${purpose} of node ${node}`);
  } catch (e) {
    files.release();
    throw e;
  }
  if ('heldBy' in claim) {
    files.release();
    throw new Error(
      `this process's network namespace (net:[${networkNamespaceInode()}]) is programmed by another process (${claim.heldBy}): stop it first, one process per network namespace`,
    );
  }
  if ('ignored' in claim) return { release: () => files.release(), notes: [claim.ignored] };
  const held = claim.lock;
  return {
    release() {
      held.release();
      files.release();
    },
    notes: [],
  };
}

/** The lock files of takeNodeLock: the node's, then its namespace's. */
function takeNodeLockFiles(stateDir: string, node: string, purpose: string, netns?: string): ProcessLock {
  const inode = networkNamespaceInode(netns);
  const nodeLock = takeNodeFilesLock(stateDir, node, purpose);
  const nsFile = netnsLockFile(stateDir, inode);
  let nsAttempt: ReturnType<typeof tryProcessLock>;
  try {
    nsAttempt = tryProcessLock(nsFile, `${purpose} of node ${node}`);
  } catch (e) {
    nodeLock.release();
    throw e;
  }
  if ('heldBy' in nsAttempt) {
    nodeLock.release();
    const which = netns === undefined ? "this process's network namespace" : `network namespace ${netns}`;
    throw new Error(
      `${which} (net:[${inode}]) is programmed by another process (${nsAttempt.heldBy}; lock ${nsFile}): stop it first, one process per network namespace`,
    );
  }
  const locks = [nsAttempt.lock, nodeLock];
  return {
    release() {
      for (const l of locks) l.release();
    },
  };
}
