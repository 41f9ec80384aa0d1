import type { EventLog } from '../../libs/eventlog/index.ts';
import { describeCluster, KUBE_KINDS, type ClusterIdentity, type ResumeStore } from '../../libs/kube/index.ts';

/**
 * The cluster a group's log belongs to, kept in the log itself as an operation of kind `cluster`
 * (params.cluster = {uid, server}): an operation row is replicated to every planner of the group
 * with the rest of the log, survives restarts, and `audit ops` lists it. The first leader of a
 * Kubernetes-sourced group records its cluster; every planner compares its own before it leads
 * (elected: after its claim caught up with the group's log) and while it follows (probe5 H2: a
 * planner of the same group name on another cluster followed silently and, once elected,
 * published that cluster's Services to this fleet). A manifests source has no cluster identity:
 * such a planner has no guard.
 */
export interface ClusterGuard {
  /** One line saying why this planner must not act for the group's log as it stands; undefined: it may. */
  mismatch(): string | undefined;
  /** With --adopt-cluster: a mismatch does not keep it from leading; elected, it records its cluster. */
  readonly adopts: boolean;
  /** Leader, caught up: records this planner's cluster when the log holds none (or another, when adopting). */
  record(): void;
}

export const CLUSTER_PARAM = 'cluster';

/** The cluster the log's newest `cluster` operation names, or undefined (none recorded yet). */
export function recordedCluster(log: Pick<EventLog, 'latestOperationWith'>): ClusterIdentity | undefined {
  const c = log.latestOperationWith(CLUSTER_PARAM)?.params[CLUSTER_PARAM] as Partial<ClusterIdentity> | undefined;
  return typeof c?.uid === 'string' ? { uid: c.uid, server: String(c.server ?? '?') } : undefined;
}

/** The refusal line when the log's cluster is not this planner's (pure). */
export function clusterMismatch(
  recorded: ClusterIdentity | undefined,
  own: ClusterIdentity,
  group: string,
): string | undefined {
  if (recorded === undefined || recorded.uid === own.uid) return undefined;
  return (
    `this planner watches ${describeCluster(own)} but group ${group}'s log belongs to ` +
    `${describeCluster(recorded)}; not leading: point --kubeconfig at that cluster, or give another install ` +
    `its own --group, or, if the cluster was rebuilt, restart one planner with --adopt-cluster`
  );
}

/**
 * The informer's resume points minus those an adoption superseded: resourceVersions of the
 * cluster the log belonged to before mean nothing to the new one (a watch from one may even be
 * accepted and skip events, probe5 H2), so the informer lists that kind and diffs against the
 * log's objects instead. A point saved after the adoption is the new cluster's and is used.
 */
export function withoutSupersededResume(store: ResumeStore, log: Pick<EventLog, 'latestOperationWith'>): ResumeStore {
  const superseded = log.latestOperationWith(CLUSTER_PARAM)?.params.supersededResume as
    | Record<string, string>
    | undefined;
  return {
    load: (kind) => {
      const rv = store.load(kind);
      return rv !== undefined && superseded?.[kind] === rv ? undefined : rv;
    },
    save: (kind, rv) => store.save(kind, rv),
  };
}

export function clusterGuard(
  log: Pick<EventLog, 'latestOperationWith' | 'recordOperation' | 'resumeStore'>,
  own: ClusterIdentity,
  o: { group: string; id: string; adopt?: boolean },
): ClusterGuard {
  return {
    adopts: o.adopt ?? false,
    mismatch: () => clusterMismatch(recordedCluster(log), own, o.group),
    record: () => {
      const was = recordedCluster(log);
      if (was?.uid === own.uid || (was !== undefined && !o.adopt)) return;
      log.recordOperation({
        kind: 'cluster',
        actor: `planner ${o.id}`,
        reason:
          was === undefined
            ? `first leader of group ${o.group} with a cluster identity: the group's log belongs to ${describeCluster(own)}`
            : `--adopt-cluster: the group's log moves from ${describeCluster(was)} to ${describeCluster(own)}`,
        params: {
          [CLUSTER_PARAM]: { uid: own.uid, server: own.server },
          ...(was ? { was, supersededResume: resumePoints(log.resumeStore()) } : {}),
        },
      });
    },
  };
}

function resumePoints(store: Pick<ResumeStore, 'load'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of KUBE_KINDS) {
    const rv = store.load(kind);
    if (rv !== undefined) out[kind] = rv;
  }
  return out;
}
