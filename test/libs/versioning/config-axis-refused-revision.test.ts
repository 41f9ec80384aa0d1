// A `config set`/`mode` with --waves that its rollout refuses (another rollout running: 409) must
// leave no revision behind. The revision's row was rolled back with the refused operation, but the
// log had cached the row as it read it back inside the transaction, so the refused revision lived
// on in memory: it could be rolled out to every node, and after a restart (the file without it)
// the planner could publish nothing and make no new revision (found from outside, 2026-12-07).
import { afterAll, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { ConfigAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';
import { oneWaveRollout } from './support/rollout-request.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const rollout = oneWaveRollout;

it('a new revision whose rollout is refused leaves no revision, in the file or in memory', async () => {
  const file = tmp.file();
  const log = await openLog(file);
  const axis = ConfigAxis.restore(log, DEFAULT_PROXY_CONFIG, () => new Date());
  expect(axis.newRevision({ scheduler: 'sh' }, { actor: 'alice', reason: 'A' }, 'config', rollout).revision).toBe(2);
  expect(axis.state.rollout).toMatchObject({ configRevision: 2, status: 'running' });

  const bob = { actor: 'bob', reason: 'B' };
  expect(() => axis.newRevision({ mode: 'nftables' }, bob, 'mode', rollout)).toThrow(/rollout of config revision 2/);
  // nothing of it: not revision 3 (file or cache), not the newest, and the axis unchanged
  expect(log.configRevision(3)).toBeUndefined();
  expect(axis.revision(3)).toBeUndefined();
  expect(log.latestConfigRevision()?.revision).toBe(2);
  expect(() => axis.startRollout({ ...rollout, revision: 3 }, bob)).toThrow('config revision 3 does not exist');
  expect(axis.state.rollout).toMatchObject({ configRevision: 2, status: 'running' });

  // the next revision takes number 3, with its own content, and the file agrees after a reopen
  axis.rollback(undefined, bob);
  const next = axis.newRevision({ tcpTimeout: 900 }, bob);
  expect(next.revision).toBe(3);
  expect(log.configRevision(3)?.config).toMatchObject({ tcpTimeout: 900 });
  expect(log.configRevision(3)?.config.mode).not.toBe('nftables');
  log.close();
  const reopened = await EventLog.open({ file, readOnly: true });
  expect(reopened.configRevision(3)?.hash).toBe(next.hash);
  reopened.close();
});
