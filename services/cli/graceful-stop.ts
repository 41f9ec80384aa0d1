/**
 * Waits for SIGINT/SIGTERM, then runs `stop` with a deadline. A long-running process must exit
 * on a signal even when a peer is gone (e.g. NATS unreachable makes a drain wait forever): past
 * the deadline, or on a second signal, it exits anyway with code 1. Returns the exit code.
 */
export async function untilSignalThenStop(
  name: string,
  stop: () => Promise<void>,
  deadlineMs = 10_000,
): Promise<number> {
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const forced = new Promise<number>((resolve) => {
    const t = setTimeout(() => {
      process.stderr.write(`${name}: stop did not finish in ${deadlineMs} ms; exiting anyway\n`);
      resolve(1);
    }, deadlineMs);
    t.unref();
    const again = () => {
      process.stderr.write(`${name}: second signal; exiting now\n`);
      resolve(1);
    };
    process.once('SIGINT', again);
    process.once('SIGTERM', again);
  });
  const code = await Promise.race([
    stop().then(
      () => 0,
      (e: unknown) => {
        process.stderr.write(`${name}: stop failed: ${e instanceof Error ? e.message : String(e)}\n`);
        return 1;
      },
    ),
    forced,
  ]);
  // Timers of clients that were not closed cleanly (reconnect loops) would keep the process alive.
  setImmediate(() => process.exit(code)).unref();
  return code;
}
