/**
 * Test setup (vitest setupFiles, host and VM): tests end processes by PID only. process.kill(0)
 * or a negative PID signals a whole process group, and a test worker shares its group with vitest
 * and the CI script: a PID parsed from a file read while still empty (Number('') is 0) SIGKILLed
 * the whole CI run of fd3c787 (exit 137 at 619 s). Refused here with an error naming the PID, so
 * such a bug fails one test instead of the run.
 */
// Where files share a worker process (isolate: false, vitest.config.ts) this runs once per file:
// it always wraps the original, not the previous file's wrapper.
const ORIGINAL_KILL = Symbol.for('switchboard.test.originalKill');
const holder = process as unknown as Record<symbol, typeof process.kill | undefined>;
const kill = (holder[ORIGINAL_KILL] ??= process.kill.bind(process));
process.kill = ((pid: number, signal?: NodeJS.Signals | number) => {
  if (!Number.isInteger(pid) || pid <= 1) {
    throw new Error(`test refused to signal PID ${pid}: end one process, by its own PID`);
  }
  return kill(pid, signal);
}) as typeof process.kill;
