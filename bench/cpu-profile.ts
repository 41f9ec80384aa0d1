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
