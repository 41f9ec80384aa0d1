// Picks the cluster credentials the way kubectl users expect: an explicit --kubeconfig
// file, else in-cluster service account when asked, else KUBECONFIG / ~/.kube/config.
//
// @kubernetes/client-node is imported here, when credentials are loaded, and nowhere else as a
// value: loading it costs ~1 s of CPU (about 2,000 modules), which every command that reaches
// libs/kube (`plan`, `apply`, `planner --manifests`, `planner --help`) paid without ever talking to
// Kubernetes. test/build/dist.test.ts fails when `plan` loads it again.

import { accessSync, constants, existsSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';

/** Where a pod's service account is mounted (what KubeConfig.loadFromCluster reads). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadKubeConfigOptions {
  /** Path given with --kubeconfig. */
  kubeconfig?: string;
  /** --in-cluster: use the pod's service account. */
  inCluster?: boolean;
  /** Context name to switch to (default: the file's current-context). */
  context?: string;
}

export async function loadKubeConfig(options: LoadKubeConfigOptions = {}): Promise<KubeConfig> {
  if (options.kubeconfig !== undefined && options.inCluster) {
    throw new Error('choose either a kubeconfig file or in-cluster configuration, not both');
  }
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (options.kubeconfig !== undefined) {
    if (!existsSync(options.kubeconfig)) throw new Error(`kubeconfig file not found: ${options.kubeconfig}`);
    try {
      kc.loadFromFile(options.kubeconfig);
    } catch (e) {
      // unreadable, not YAML, or not a mapping (an empty file reads as nothing): the library's own
      // message ("Cannot read properties of undefined") does not say which file or why
      throw new Error(`kubeconfig ${options.kubeconfig}: cannot read it as a kubeconfig: ${(e as Error).message}`);
    }
  } else if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error(
        'in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (not running in a pod?)',
      );
    }
    // The client reads the token and CA only at its first request: a missing mount would fail
    // there, long after the planner started (review5 F7).
    for (const f of ['token', 'ca.crt']) {
      try {
        accessSync(`${SERVICE_ACCOUNT_DIR}/${f}`, constants.R_OK);
      } catch (e) {
        throw new Error(
          `in-cluster configuration needs the service account's ${f} in ${SERVICE_ACCOUNT_DIR}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (not running in a pod?)`,
        );
      }
    }
    kc.loadFromCluster();
  } else {
    // KUBECONFIG (first file wins, others merged), then ~/.kube/config, then in-cluster.
    kc.loadFromDefault();
  }
  if (options.context !== undefined) kc.setCurrentContext(options.context);
  if (!kc.getCurrentContext()) throw new Error('kubeconfig names no current-context');
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig has no cluster for context "${kc.getCurrentContext()}"`);
  if (!/^https?:\/\//.test(cluster.server))
    throw new Error(`kubeconfig cluster "${cluster.name}" has no valid server URL: "${cluster.server}"`);
  return kc;
}
