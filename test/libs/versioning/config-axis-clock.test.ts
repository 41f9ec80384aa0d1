import { afterAll, expect, it } from 'vitest';
import { DEFAULT_WAVE_POLICY, type NodeReport, type WavePolicy } from '../../../libs/control/index.ts';
import type { ProxyConfig } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';

// Review4 G6 / probe4 K4: a rollout's wave timeout and bake are durations, measured on the
// monotonic clock; the wall clock only stamps what is recorded. Both clocks are injected here and
// moved apart as an NTP step moves them (the wall clock jumps, the monotonic one does not).

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const who = { actor: 'test', reason: 'test' };
const T0 = Date.parse('2026-12-02T06:30:00Z');
const MIN = 60_000;

async function axisWithClocks(policy: Partial<WavePolicy>) {
  const clocks = { wall: T0, mono: 1_000 };
  const log = await openLog(tmp.file(), () => new Date(clocks.wall));
  const open = () =>
    ConfigAxis.restore(log, { mode: 'ipvs' } as ProxyConfig, () => new Date(clocks.wall), { mono: () => clocks.mono });
  const axis = open();
  axis.newRevision({ scheduler: 'wrr' }, who, 'config', {
    waves: [
      { kind: 'count', n: 1 },
      { kind: 'percent', p: 100 },
    ],
    nodes: ['a', 'b'],
    notCanary: new Map(),
    pauseOnError: false,
    policy: { ...DEFAULT_WAVE_POLICY, ...policy },
  });
  // both clocks move by `ms` (real time passing); `step` moves the wall clock alone
  const pass = (ms: number) => {
    clocks.wall += ms;
    clocks.mono += ms;
  };
  const step = (ms: number) => {
    clocks.wall += ms;
  };
  return { axis, log, pass, step, open };
}
const acked = (...nodes: string[]) =>
  new Map<string, NodeReport>(nodes.map((n) => [n, { type: 'ACK', configRevision: 2 } as NodeReport]));

it('a wall-clock step forward larger than the wave timeout does not time the running wave out', async () => {
  const { axis, pass, step } = await axisWithClocks({ waveTimeoutMs: 10 * MIN, bakeMs: 0 });
  expect(axis.state.rollout?.status).toBe('running');
  pass(30_000);
  step(60 * MIN); // NTP steps the wall clock an hour forward
  expect(axis.step(acked())).toBe(false); // before: halted, "no ACK of revision 2 within the wave timeout"
  expect(axis.state.rollout?.status).toBe('running');
  expect(axis.waitMs()).toBe(10 * MIN - 30_000);
  pass(10 * MIN - 30_000); // the timeout really passes
  expect(axis.step(acked())).toBe(true);
  expect(axis.state.rollout?.status).toBe('halted');
});

it('a bake does not end early after a wall-clock step forward (probe4 K4: 31 s of a 5 m bake)', async () => {
  const { axis, pass, step } = await axisWithClocks({ bakeMs: 5 * MIN });
  pass(1000);
  expect(axis.step(acked('a'))).toBe(true); // wave 1 ACKed: the bake starts
  expect(axis.state.rollout?.bakeStartedAt).toBe(new Date(T0 + 1000).toISOString());
  step(6 * MIN);
  pass(31_000);
  expect(axis.step(acked('a'))).toBe(false); // before: "wave 2 of 2 starts: ... baked 5m"
  expect(axis.elapsed()).toEqual({ waveMs: 32_000, bakeMs: 31_000 });
  pass(5 * MIN - 31_000);
  expect(axis.step(acked('a'))).toBe(true);
  expect(axis.state.rollout?.wave).toBe(1);
  // what is recorded keeps the wall clock: wave 2's stamp is the stepped wall time
  expect(axis.state.rollout?.waveStartedAt).toBe(new Date(T0 + 6 * MIN + 5 * MIN + 1000).toISOString());
});

it('a restarted planner takes the elapsed time of a persisted wave from the wall clock once, at least 0, then monotonically', async () => {
  const { pass, step, open } = await axisWithClocks({ waveTimeoutMs: 10 * MIN, bakeMs: 0 });
  pass(2 * MIN);
  // a restart (or failover to another host): a new monotonic origin, the wall stamps from the log
  const restored = open();
  expect(restored.elapsed()?.waveMs).toBe(2 * MIN);
  step(60 * MIN); // a step after the restore moves nothing
  pass(MIN);
  expect(restored.elapsed()?.waveMs).toBe(3 * MIN);
  expect(restored.step(acked())).toBe(false);
  // a host whose wall clock is behind the stamp: the wave counts from the restore, never negative
  step(-2 * 60 * MIN);
  const behind = open();
  expect(behind.elapsed()?.waveMs).toBe(0);
  // and one restored after its wave timed out (wall clock) times out at the first look
  step(3 * 60 * MIN);
  const late = open();
  expect(late.elapsed()?.waveMs).toBe(10 * MIN); // clamped to the timeout
  expect(late.step(acked())).toBe(true);
  expect(late.state.rollout?.status).toBe('halted');
});
