/**
 * Test setup (vitest setupFiles, host and VM): tests end processes by PID only. process.kill(0)
 * or a negative PID signals a whole process group, and a test worker shares its group with vitest
 * and the CI script: a PID parsed from a file read while still empty (Number('') is 0) SIGKILLed
 * the whole CI run of fd3c787 (exit 137 at 619 s). Refused here with an error naming the PID, so
 * such a bug fails one test instead of the run.
 */
const kill = process.kill.bind(process);
process.kill = ((pid: number, signal?: NodeJS.Signals | number) => {
  if (!Number.isInteger(pid) || pid <= 1) {
    throw new Error(`test refused to signal PID ${pid}: end one process, by its own PID`);
  }
  return kill(pid, signal);
}) as typeof process.kill;
