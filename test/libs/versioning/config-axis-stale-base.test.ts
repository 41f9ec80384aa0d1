import { afterAll, expect, it } from 'vitest';
import type { NodeReport } from '../../../libs/control/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';
import { oneWaveRollout } from './support/rollout-request.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const alice = { actor: 'alice', reason: 'wrr' };
const bob = { actor: 'bob', reason: 'tcp timeout' };
const rollout = oneWaveRollout;
const acks = (revision: number) =>
  new Map<string, NodeReport>(['a', 'b'].map((n) => [n, { type: 'ACK', configRevision: revision }]));

// probe11 K1: bob's revision 3 is made over default 1 while alice's revision 2 rolls out; once 2 is
// the default, rolling 3 out put scheduler back to rr without a word (before: started, rc 0).
it('refuses the rollout of a revision made from an earlier default, naming the fields it would revert; --force records them', async () => {
  const log = await openLog(tmp.file());
  const axis = ConfigAxis.restore(log, DEFAULT_PROXY_CONFIG, () => new Date());
  expect(axis.newRevision({ scheduler: 'wrr' }, alice, 'config', rollout).revision).toBe(2);
  expect(axis.newRevision({ tcpTimeout: 900 }, bob).revision).toBe(3);
  expect(axis.step(acks(2))).toBe(true);
  expect(axis.state).toMatchObject({ defaultRevision: 2, rollout: { status: 'completed' } });

  const opsBefore = log.operations().length;
  expect(() => axis.startRollout({ ...rollout, revision: 3 }, bob)).toThrow(
    'config revision 3 was made from revision 1, and revision 2 has become the cluster default since: rolling it out would also change scheduler wrr → rr; make the change again over the default (ctl config set tcpTimeout=900) or roll it out with --force',
  );
  expect(log.operations().length).toBe(opsBefore);
  expect(axis.state).toMatchObject({ defaultRevision: 2, rollout: { configRevision: 2, status: 'completed' } });

  // the change made again over the default: revision 4 carries both, and rolls out
  expect(axis.deltaTo(3)).toEqual([
    { field: 'scheduler', from: 'wrr', to: 'rr' },
    { field: 'tcpTimeout', from: 0, to: 900 },
  ]);
  expect(axis.newRevision({ tcpTimeout: 900 }, bob).revision).toBe(4);
  expect(axis.revision(4)!.config).toMatchObject({ scheduler: 'wrr', tcpTimeout: 900 });
  axis.startRollout({ ...rollout, revision: 4 }, bob);
  const started = log.operations().at(-1)!;
  expect(started.params).toMatchObject({ revision: 4, changes: [{ field: 'tcpTimeout', from: 0, to: 900 }] });
  expect(started.params.forced).toBeUndefined();
  axis.step(acks(4));
  expect(axis.state.defaultRevision).toBe(4);

  // --force: the revert is asked for, and the operation says which fields it reverted
  axis.startRollout({ ...rollout, revision: 3, force: true }, bob);
  expect(log.operations().at(-1)!.params).toMatchObject({
    revision: 3,
    changes: [{ field: 'scheduler', from: 'wrr', to: 'rr' }],
    forced: [{ field: 'scheduler', from: 'wrr', to: 'rr' }],
  });
  log.close();
});
