/**
 * Starts a V8 CPU profile of this process (250 µs sampling, the benches' one setting); the
 * function returned stops it and gives the profile (JSON-serialisable, a `.cpuprofile` file's text).
 */
export async function startCpuProfile(): Promise<() => Promise<object>> {
  const { Session } = await import('node:inspector/promises'); // loaded only by a run that profiles
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    return profile;
  };
}

/**
 * The time each sample of a V8 CPU profile stands for, in ms: its delta from the sample before
 * (`timeDeltas[i]`), except the first sample's, which is 0. That delta runs from the profile's
 * start to its first tick: the profiler's own start-up (V8 records every function compiled so
 * far), charged to whatever frame is on the stack then: the inspector's `dispatch` when
 * startCpuProfile started it, 50–125 ms in a fan-out worker (2026-12-07). Summaries that counted
 * it read it as a native function of the workload's (`dispatch`, 6–34 % of a profile).
 */
export function sampleMs(profile: { readonly timeDeltas: readonly number[] }): number[] {
  return profile.timeDeltas.map((d, i) => (i === 0 ? 0 : d / 1000));
}
