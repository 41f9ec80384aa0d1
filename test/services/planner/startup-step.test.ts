import { describe, expect, it } from 'vitest';
import { startupStep } from '../../../services/planner/run-planner.ts';

// A second planner racing the first on a fresh cluster once exited with the single line
// "switchboard: timeout" (a JetStream request without an answer): startup failures name their step.
describe('planner startup steps', () => {
  it("a step's failure names the step and keeps the error's class", async () => {
    class TimeoutError extends Error {}
    const e = await startupStep('opening the group leader lease (g)', async () => {
      throw new TimeoutError('timeout');
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TimeoutError);
    expect((e as Error).message).toBe('opening the group leader lease (g): timeout');
  });

  it('a flag error keeps its text (it names the flag already), and a value passes through', async () => {
    await expect(
      startupStep('connecting', async () => {
        throw new Error('--replicas 5: larger than the NATS cluster c (3 servers)');
      }),
    ).rejects.toThrow(/^--replicas 5: larger than the NATS cluster c \(3 servers\)$/);
    await expect(startupStep('connecting', async () => 42)).resolves.toBe(42);
  });
});
