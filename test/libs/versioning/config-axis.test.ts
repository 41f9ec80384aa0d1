import { afterAll, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';
import { oneWaveRollout } from './support/rollout-request.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const who = { actor: 'test', reason: 'test' };
const rollout = oneWaveRollout;

// Review5 F2: "nothing changed" is a change equal to the default (not to the newest revision), and
// a change equal to an existing revision answers that revision with the rollout asked for.
it('a change equal to the default makes nothing; one equal to another revision reuses it and starts the rollout asked', async () => {
  const log = await openLog(tmp.file());
  const axis = ConfigAxis.restore(log, { ...DEFAULT_PROXY_CONFIG, scheduler: 'rr' }, () => new Date());
  expect(axis.newRevision({ scheduler: 'wrr' }, who).revision).toBe(2); // made, not rolled out
  const ops = () => log.operations().length;
  const opsBefore = ops();

  // back to the default's values while revision 2 is the newest: no revision 3, no operation
  expect(axis.newRevision({ scheduler: 'rr' }, who, 'config', rollout).revision).toBe(1);
  expect(axis.newestRevision()).toBe(2);
  expect(axis.state.rollout).toBeUndefined();
  expect(ops()).toBe(opsBefore);

  // revision 2's values again, with waves: revision 2 answered, its rollout started (before: no rollout)
  expect(axis.newRevision({ scheduler: 'wrr' }, who, 'config', rollout).revision).toBe(2);
  expect(axis.newestRevision()).toBe(2);
  expect(axis.state.rollout).toMatchObject({ configRevision: 2, status: 'running' });
  expect(log.operations().find((o) => o.kind === 'config' && (o.params as { reused?: boolean }).reused)).toBeDefined();
  log.close();
});

// W1: a rollout whose first wave can only take nodes without a live applier is refused, and the
// revision it would have made is not recorded (the operation is one transaction).
it('refuses a rollout with no eligible canary, recording nothing', async () => {
  const log = await openLog(tmp.file());
  const axis = ConfigAxis.restore(log, { ...DEFAULT_PROXY_CONFIG, scheduler: 'rr' }, () => new Date());
  const opsBefore = log.operations().length;
  const waves = [
    { kind: 'count' as const, n: 1 },
    { kind: 'percent' as const, p: 100 },
  ];
  const notCanary = new Map([
    ['a', 'UNKNOWN (never heard from)'],
    ['c', 'STALE (running version 1 config 1, target 2 config 1 set 61 s ago)'],
  ]);
  expect(() =>
    axis.newRevision({ scheduler: 'wrr' }, who, 'config', { ...rollout, waves, nodes: ['a', 'c'], notCanary }),
  ).toThrow(/^no canary: .* none of the 2 fleet nodes is: a UNKNOWN \(never heard from\); c STALE/);
  expect(axis.newestRevision()).toBe(1);
  expect(log.operations().length).toBe(opsBefore);
  expect(axis.state.rollout).toBeUndefined();
  // with b live, b is the canary although a sorts first
  axis.newRevision({ scheduler: 'wrr' }, who, 'config', { ...rollout, waves, nodes: ['c', 'b', 'a'], notCanary });
  expect(axis.state.rollout?.waves).toEqual([['b'], ['b', 'a', 'c']]);
  log.close();
});
