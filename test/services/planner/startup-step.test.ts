import { TimeoutError } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { startupStep } from '../../../services/planner/run-planner.ts';

// A second planner racing the first on a fresh cluster once exited with the single line
// "switchboard: timeout" (a JetStream request without an answer): startup failures name their step,
// and transient ones are retried for a while first (test/ha/fresh-cluster-start.test.ts: the race).
describe('planner startup steps', () => {
  it("a transient failure is retried, each retry said with the step's name", async () => {
    let calls = 0;
    const said: string[] = [];
    const v = await startupStep(
      'opening the group leader lease (g)',
      async () => {
        if (++calls < 3) throw new TimeoutError();
        return 'open';
      },
      { say: (l) => said.push(l), retryMs: 10_000 },
    );
    expect(v).toBe('open');
    expect(calls).toBe(3);
    expect(said).toEqual([
      'opening the group leader lease (g): timeout (attempt 1); retrying',
      'opening the group leader lease (g): timeout (attempt 2); retrying',
    ]);
  });

  it("once the retry time is spent, the failure names the step and keeps the error's class", async () => {
    let calls = 0;
    const e = await startupStep(
      'opening the group leader lease (g)',
      async () => {
        calls++;
        throw new TimeoutError();
      },
      { retryMs: 600 },
    ).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TimeoutError);
    expect((e as Error).message).toBe('opening the group leader lease (g): timeout');
    expect(calls).toBeGreaterThanOrEqual(2); // 250 ms, then 500 ms would pass the 600 ms budget
  });

  it('a refusal is not retried; a flag error keeps its text (it names the flag already); a value passes through', async () => {
    let calls = 0;
    await expect(
      startupStep('connecting', async () => {
        calls++;
        throw new Error('--replicas 5: larger than the NATS cluster c (3 servers)');
      }),
    ).rejects.toThrow(/^--replicas 5: larger than the NATS cluster c \(3 servers\)$/);
    expect(calls).toBe(1);
    await expect(startupStep('connecting', async () => 42)).resolves.toBe(42);
  });
});
