import { expect, it } from 'vitest';
import { configRollbackSentence } from '../../../services/cli/operation-sentences.ts';

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
