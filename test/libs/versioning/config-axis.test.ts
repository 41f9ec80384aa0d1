import { afterAll, expect, it } from 'vitest';
import { DEFAULT_WAVE_POLICY } from '../../../libs/control/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const who = { actor: 'test', reason: 'test' };
const rollout = {
  waves: [{ kind: 'percent' as const, p: 100 }],
  nodes: ['a', 'b'],
  pauseOnError: false,
  policy: DEFAULT_WAVE_POLICY,
};

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
