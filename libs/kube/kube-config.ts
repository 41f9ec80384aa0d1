// Picks the cluster credentials the way kubectl users expect: an explicit --kubeconfig
// file, else in-cluster service account when asked, else KUBECONFIG / ~/.kube/config.

import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

export interface LoadKubeConfigOptions {
  /** Path given with --kubeconfig. */
  kubeconfig?: string;
  /** --in-cluster: use the pod's service account. */
  inCluster?: boolean;
  /** Context name to switch to (default: the file's current-context). */
  context?: string;
}

export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  if (options.kubeconfig !== undefined && options.inCluster) {
    throw new Error('choose either a kubeconfig file or in-cluster configuration, not both');
  }
  if (options.kubeconfig !== undefined) {
    if (!existsSync(options.kubeconfig)) throw new Error(`kubeconfig file not found: ${options.kubeconfig}`);
    kc.loadFromFile(options.kubeconfig);
  } else if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error(
        'in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (not running in a pod?)',
      );
    }
    kc.loadFromCluster();
  } else {
    // KUBECONFIG (first file wins, others merged), then ~/.kube/config, then in-cluster.
    kc.loadFromDefault();
  }
  if (options.context !== undefined) kc.setCurrentContext(options.context);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`kubeconfig has no cluster for context "${kc.getCurrentContext()}"`);
  if (!/^https?:\/\//.test(cluster.server))
    throw new Error(`kubeconfig cluster "${cluster.name}" has no valid server URL: "${cluster.server}"`);
  return kc;
}
