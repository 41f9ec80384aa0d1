// Which Kubernetes cluster a planner watches: the kube-system Namespace's uid. Every cluster
// makes that Namespace once, at bootstrap, and it cannot be deleted, so its uid names the
// cluster (not the API server's address: one cluster has several, and a rebuilt cluster may
// reuse the old one). A planner group records it in its log (probe5 H2: a planner of the same
// group name pointed at another cluster took over the fleet with that cluster's Services).

import { KubeApiError } from './kube-api-error.ts';
import type { KubeHttp } from './kube-http.ts';

export const CLUSTER_IDENTITY_PATH = '/api/v1/namespaces/kube-system';

export interface ClusterIdentity {
  /** The kube-system Namespace's metadata.uid: what is compared. */
  readonly uid: string;
  /** The API server it was read from (said in messages, never compared). */
  readonly server: string;
}

export function describeCluster(c: ClusterIdentity): string {
  return `cluster ${c.uid} (kube-system uid, read from ${c.server})`;
}

export interface ReadClusterIdentityOptions {
  /** The API server URL (for messages). */
  readonly server: string;
  /** How long answers that may pass (no connection, 429, 5xx) are retried (default 30 s). */
  readonly withinMs?: number;
  readonly onRetry?: (why: string, attempt: number) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

/** Answers that name a setting to fix, not a moment to wait out. */
function refusal(e: KubeApiError): string | undefined {
  if (e.code === 403)
    return `${e.message}: the planner needs "get" on namespaces, resourceNames ["kube-system"] (deploy/kubernetes/base/rbac.yaml)`;
  if (e.code === 401) return `${e.message}: the API server does not accept the kubeconfig's credentials`;
  if (e.code === 404)
    return `${e.message}: no kube-system Namespace (is the kubeconfig's server a Kubernetes API server?)`;
  if (e.code === 429 || e.code >= 500) return undefined;
  return e.message;
}

/**
 * Reads the cluster's identity once (a start-up step): no answer, 429 and 5xx are retried with
 * backoff (250 ms doubling to 2 s) for `withinMs`; a refusal (403, 401, 404, ...) throws at once
 * in one line naming what to fix.
 */
export async function readClusterIdentity(http: KubeHttp, o: ReadClusterIdentityOptions): Promise<ClusterIdentity> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + (o.withinMs ?? 30_000);
  let pause = 250;
  for (let attempt = 1; ; attempt++) {
    let doc: unknown;
    try {
      doc = await http.getJson({ path: CLUSTER_IDENTITY_PATH, idleTimeoutMs: 10_000 });
    } catch (e) {
      const final = e instanceof KubeApiError ? refusal(e) : undefined;
      if (final !== undefined) throw new Error(final);
      const why = (e as Error).message;
      if (now() + pause > deadline)
        throw new Error(`${why} (retried for ${Math.round((o.withinMs ?? 30_000) / 1000)} s)`);
      o.onRetry?.(why, attempt);
      await sleep(pause);
      pause = Math.min(pause * 2, 2000);
      continue;
    }
    const uid = (doc as { metadata?: { uid?: unknown } } | undefined)?.metadata?.uid;
    if (typeof uid !== 'string' || uid === '')
      throw new Error(`GET ${CLUSTER_IDENTITY_PATH}: the answer carries no metadata.uid`);
    return { uid, server: o.server };
  }
}
