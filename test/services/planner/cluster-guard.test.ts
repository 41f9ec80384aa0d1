import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import {
  clusterGuard,
  clusterMismatch,
  recordedCluster,
  withoutSupersededResume,
} from '../../../services/planner/cluster-guard.ts';

// probe5 H2: the cluster a group's log belongs to, recorded in the log by its first leader and
// compared by every planner before it leads or while it follows; --adopt-cluster moves it.

const A = { uid: 'uid-a', server: 'https://a:6443' };
const B = { uid: 'uid-b', server: 'https://b:6443' };
let dir: string;
let log: EventLog;
beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-cluster-guard-'));
  log = await EventLog.open({ file: path.join(dir, 'log.db'), sync: 'normal' });
});
afterEach(() => {
  log.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('cluster guard', () => {
  it('no identity recorded, or the same uid (from another API server address): no mismatch', () => {
    expect(clusterMismatch(undefined, A, 'g')).toBeUndefined();
    expect(clusterMismatch({ uid: 'uid-a', server: 'https://10.0.0.1' }, A, 'g')).toBeUndefined();
    expect(clusterMismatch(A, B, 'g')).toBe(
      "this planner watches cluster uid-b (kube-system uid, read from https://b:6443) but group g's log belongs to " +
        'cluster uid-a (kube-system uid, read from https://a:6443); not leading: point --kubeconfig at that cluster, ' +
        'or give another install its own --group, or, if the cluster was rebuilt, restart one planner with --adopt-cluster',
    );
  });

  it('the first leader records its cluster once; a planner of another cluster is refused and records nothing', () => {
    const a = clusterGuard(log, A, { group: 'g', id: 'pa' });
    expect(a.mismatch()).toBeUndefined();
    a.record();
    a.record(); // a later leader of the same cluster
    expect(recordedCluster(log)).toEqual(A);
    const b = clusterGuard(log, B, { group: 'g', id: 'pz' });
    expect(b.adopts).toBe(false);
    expect(b.mismatch()).toContain('log belongs to cluster uid-a');
    b.record(); // never called on a refusal; harmless if it were
    expect(log.operations().map((o) => [o.kind, o.actor, o.params])).toEqual([
      ['cluster', 'planner pa', { cluster: A }],
    ]);
  });

  it('--adopt-cluster records the new cluster naming the old one; the old resume points are not used, newer ones are', () => {
    clusterGuard(log, A, { group: 'g', id: 'pa' }).record();
    const store = log.resumeStore();
    store.save('Service', '9');
    store.save('Node', '7');
    store.flush();
    const b = clusterGuard(log, B, { group: 'g', id: 'pb', adopt: true });
    expect(b.adopts).toBe(true);
    b.record();
    const op = log.operations().at(-1)!;
    expect(op.kind).toBe('cluster');
    expect(op.reason).toContain("--adopt-cluster: the group's log moves from cluster uid-a");
    expect(op.params).toEqual({ cluster: B, was: A, supersededResume: { Service: '9', Node: '7' } });
    expect(b.mismatch()).toBeUndefined();
    expect(clusterGuard(log, A, { group: 'g', id: 'pa' }).mismatch()).toContain('log belongs to cluster uid-b');
    const resume = withoutSupersededResume(store, log);
    expect(resume.load('Service')).toBeUndefined(); // cluster A's: the informer lists B instead
    expect(resume.load('Node')).toBeUndefined();
    resume.save('Service', '3'); // cluster B's own, saved after the adoption
    expect(resume.load('Service')).toBe('3');
  });
});
