import { afterAll, expect, it } from 'vitest';
import { DEFAULT_WAVE_POLICY, rollbackExpectationMiss, type NodeReport } from '../../../libs/control/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const alice = { actor: 'alice', reason: 'undo' };
const bob = { actor: 'bob', reason: 'undo too' };
const waves = (...w: (number | string)[]) =>
  w.map((x) => (typeof x === 'number' ? { kind: 'count' as const, n: x } : { kind: 'percent' as const, p: 100 }));
const rollout = {
  waves: waves('100%'),
  nodes: ['a', 'b'],
  notCanary: new Map<string, string>(),
  pauseOnError: false,
  policy: DEFAULT_WAVE_POLICY,
};
const acks = (revision: number) =>
  new Map<string, NodeReport>(['a', 'b'].map((n) => [n, { type: 'ACK', configRevision: revision }]));

/** Defaults 1 → 2 → 3 (each rolled out and completed). */
async function threeDefaults() {
  const log = await openLog(tmp.file());
  const axis = ConfigAxis.restore(log, DEFAULT_PROXY_CONFIG, () => new Date());
  for (const scheduler of ['wrr', 'lc']) {
    const rev = axis.newRevision({ scheduler }, alice, 'config', rollout).revision;
    axis.step(acks(rev));
  }
  expect(axis.state.defaultRevision).toBe(3);
  return { log, axis };
}

// probe11 K2: two rollbacks that both meant "undo 3" walked the default back to 1 (before: no
// expectation accepted, both succeeded).
it('a rollback expecting the default it saw is refused once the default moved; without an expectation it walks back as before', async () => {
  const { log, axis } = await threeDefaults();
  axis.rollback(undefined, alice, { expect: { fromRevision: 3 } });
  expect(axis.state.defaultRevision).toBe(2);
  const ops = log.operations().length;
  expect(() => axis.rollback(undefined, bob, { expect: { fromRevision: 3 } })).toThrow(
    /^the cluster default is config revision 2, not 3 as this rollback expected \(it moved meanwhile\): nothing rolled back; see ctl status; last config operation: rollback by alice at \S+ \("undo"\)$/,
  );
  expect(axis.state.defaultRevision).toBe(2);
  expect(log.operations().length).toBe(ops);
  axis.rollback(undefined, bob); // no expectation: the old meaning
  expect(axis.state.defaultRevision).toBe(1);
  log.close();
});

// probe11 K2 (the console's double click): the second rollback, meant to stop the canary the first
// stopped, moved the stable default fleet-wide (before: default 3 → 2).
it('a rollback meant to stop a rollout is refused once that rollout is no longer in flight', async () => {
  const { log, axis } = await threeDefaults();
  axis.newRevision({ udpTimeout: 88 }, alice, 'config', { ...rollout, waves: waves(1, '100%') });
  expect(axis.state.rollout).toMatchObject({ configRevision: 4, status: 'running' });
  axis.rollback(undefined, alice, { expect: { rollout: 4, fromRevision: 3 } });
  expect(axis.state).toMatchObject({ defaultRevision: 3, rollout: { status: 'rolled-back' } });
  expect(() => axis.rollback(undefined, alice, { expect: { rollout: 4, fromRevision: 3 } })).toThrow(
    /^the rollout of config revision 4 is no longer in flight \(it is rolled-back\); the cluster default stays revision 3: nothing rolled back/,
  );
  expect(axis.state.defaultRevision).toBe(3);
  // expecting the default with no rollout seen, while one started since: refused too
  axis.startRollout({ ...rollout, waves: waves(1, '100%'), revision: 4 }, bob);
  expect(() => axis.rollback(undefined, alice, { expect: { fromRevision: 3 } })).toThrow(
    /^a rollout of config revision 4 is running since this rollback read the state: nothing rolled back/,
  );
  expect(axis.state.rollout?.status).toBe('running');
  log.close();
});

// probe11 K7: a rollback to a revision never rolled out was its instant rollout to every node.
it('a rollback to a revision that never was the default is refused unless forced; one to an earlier default is not', async () => {
  const { log, axis } = await threeDefaults();
  expect(axis.newRevision({ mode: 'nftables' }, alice).revision).toBe(4);
  expect(() => axis.rollback(4, alice)).toThrow(
    'config revision 4 was never the cluster default: a rollback to it would roll it out to every node at once; roll it out in waves (ctl rollout --config-revision 4) or pass --force',
  );
  expect(axis.state.defaultRevision).toBe(3);
  axis.rollback(1, alice);
  expect(axis.state.defaultRevision).toBe(1);
  axis.rollback(3, alice); // was the default once (rolled back from): named, it comes back
  expect(axis.state.defaultRevision).toBe(3);
  axis.rollback(4, alice, { force: true });
  expect(axis.state.defaultRevision).toBe(4);
  expect(log.operations().at(-1)!.params).toMatchObject({ to: 4, force: true });
  log.close();
});

it('rollbackExpectationMiss: nothing to say while the state is what the sender saw', () => {
  const st = { defaultRevision: 3, previousDefault: 2, earlierDefaults: [1, 2], rollout: undefined };
  expect(rollbackExpectationMiss(st, {})).toBeUndefined();
  expect(rollbackExpectationMiss(st, { fromRevision: 3 })).toBeUndefined();
  expect(rollbackExpectationMiss(st, { fromRevision: 2 })).toMatch(/^the cluster default is config revision 3, not 2/);
  expect(rollbackExpectationMiss(st, { rollout: 4 })).toMatch(/no rollout of it is in flight/);
});
