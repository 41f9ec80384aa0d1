import { expect, it } from 'vitest';
import { configRollbackSentence, haltWords, rolloutStatusText } from '../../../services/cli/operation-sentences.ts';

const rollout = { configRevision: 10, fromRevision: 9, status: 'rolled-back', wave: 0, waves: [['a']] };
const base = { startedAt: '', updatedAt: '' };

// probe11 K8: every config rollback sentence named "(rollout of revision X rolled back)" whenever the
// last rollout was rolled back, even one rolled back long before, and said nothing of where it came from.
it('a config rollback sentence says where it moved from, and names a rollout only when this rollback stopped it', () => {
  const r = { ...rollout, ...base };
  expect(configRollbackSentence({ defaultRevision: 5, rollout: r, rolledBackFrom: 9 })).toBe(
    'config rolled back: the cluster default is config revision 5 on every node (from revision 9).\n',
  );
  expect(configRollbackSentence({ defaultRevision: 9, rollout: r, rolledBackFrom: 9, stoppedRollout: 10 })).toBe(
    'config rolled back: the rollout of revision 10 is rolled back; config revision 9 stays the cluster default on every node.\n',
  );
  expect(configRollbackSentence({ defaultRevision: 4, rollout: r, rolledBackFrom: 4 })).toBe(
    'config revision 4 already was the cluster default on every node: nothing moved.\n',
  );
  // an older planner's answer (no rolledBackFrom): the sentence as before
  expect(configRollbackSentence({ defaultRevision: 9, rollout: r })).toBe(
    'config rolled back: the cluster default is config revision 9 on every node (rollout of revision 10 rolled back).\n',
  );
});

// probe11 K8: `rollout status` after a rollback of a halted rollout read "rolled-back by b: …" (the halt unnamed),
// and a rolled-back revision made the default again by a later rollback read as if it were not in force.
it('rollout status: a halt a rollback stopped stays a halt; a rolled-back revision in force again says so', () => {
  const haltedBy = { node: 'b', error: 'nft: bad' };
  const r = { ...rollout, ...base, configRevision: 4, fromRevision: 3, haltedBy, pauseOnError: false };
  expect(rolloutStatusText({ defaultRevision: 3, rollout: r }, 0).split('\n')).toContain(
    'halted by b: nft: bad, then rolled back',
  );
  const paused = { ...r, pauseOnError: true };
  expect(rolloutStatusText({ defaultRevision: 3, rollout: paused }, 0)).toContain(
    'paused by b: nft: bad, then rolled back',
  );
  const again = { ...rollout, ...base, configRevision: 3, fromRevision: 2 };
  expect(rolloutStatusText({ defaultRevision: 3, rollout: again }, 0)).toContain(
    'revision 3 has since been made the cluster default again by a rollback',
  );
  expect(rolloutStatusText({ defaultRevision: 2, rollout: again }, 0)).not.toContain('again');
  // the console shows the same words, in parts (console-snapshot.ts)
  expect(haltWords(paused)).toEqual({ by: 'paused by b', error: 'nft: bad', after: ', then rolled back' });
  expect(haltWords({ ...r, status: 'halted' })).toEqual({ by: 'halted by b', error: 'nft: bad', after: '' });
  expect(haltWords(again)).toBeUndefined();
});

// probe12 L6: after a planner whose clock was an hour ahead stamped the wave, `rollout status` read
// "wave started 0s ago, times out in 66m20s": the age from the wall stamp, clamped on one line only.
it('rollout status: wave and bake ages are the planner-measured ones, the same on both lines', () => {
  const nowMs = Date.parse('2026-12-03T12:00:00Z');
  const ahead = '2026-12-03T13:00:00.000Z'; // stamped by a planner an hour ahead
  const r = {
    ...rollout,
    ...base,
    status: 'running' as const,
    configRevision: 4,
    fromRevision: 3,
    pauseOnError: false,
    waveStartedAt: ahead,
    bakeStartedAt: ahead,
    policy: { bakeMs: 1_800_000, waveTimeoutMs: 600_000, maxFailures: '0', pauseBefore: [] },
  };
  const text = rolloutStatusText({ defaultRevision: 3, rollout: r }, nowMs, [], { waveMs: 20_000, bakeMs: 20_000 });
  expect(text).toContain('wave started 20s ago, times out in 9m40s');
  expect(text).toContain('bake: 20s of 30m00s');
  // an older planner's /status (no elapsed): never a wave timeout longer than the timeout itself
  expect(rolloutStatusText({ defaultRevision: 3, rollout: r }, nowMs)).toContain(
    'wave started 0s ago, times out in 10m00s',
  );
});
