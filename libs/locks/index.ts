// Public surface of libs/locks: one process at a time, by a lock the kernel frees with its holder.
export { tryProcessLock, type LockAttempt, type ProcessLock } from './process-lock.ts';
export {
  claimAbstractName,
  describeGreeting,
  judgeClaimHolder,
  type ClaimAttempt,
  type ClaimHolder,
} from './abstract-name-claim.ts';
