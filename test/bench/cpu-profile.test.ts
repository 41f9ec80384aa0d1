// The benches' profile summaries charge each sample the time since the sample before; the first
// sample's delta is the profiler's own start-up, which they used to read as the workload's
// (`dispatch`, 6–34 % of a profile: docs/benchmarks.md, "Profiles: the profiler's start-up").
import { describe, expect, it } from 'vitest';
import { sampleMs, startCpuProfile } from '../../bench/cpu-profile.ts';

describe('sampleMs', () => {
  it("charges each sample its delta in ms, the first sample nothing (the profiler's start-up)", () => {
    expect(sampleMs({ timeDeltas: [122_141, 1_096, 399, 250] })).toEqual([0, 1.096, 0.399, 0.25]);
    expect(sampleMs({ timeDeltas: [] })).toEqual([]);
  });

  it('a real profile: what it charges is the span from the first sample to the last', async () => {
    const stop = await startCpuProfile();
    const until = performance.now() + 30;
    let spins = 0;
    while (performance.now() < until) spins++;
    const profile = (await stop()) as { timeDeltas: number[]; samples: number[] };
    expect(spins).toBeGreaterThan(0);
    expect(profile.samples.length).toBeGreaterThan(1);
    const charged = sampleMs(profile).reduce((a, b) => a + b, 0);
    const firstToLast = profile.timeDeltas.slice(1).reduce((a, b) => a + b, 0) / 1000;
    expect(charged).toBeCloseTo(firstToLast, 6);
  });
});
