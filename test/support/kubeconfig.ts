// Writes a kubeconfig file pointing at a test apiserver. Plain http needs
// `insecure-skip-tls-verify: true` or @kubernetes/client-node refuses the cluster.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface WriteKubeconfigOptions {
  /** Server URL, e.g. KubeApiServer#url. */
  server: string;
  /** Bearer token for the user entry (omit for an anonymous user). */
  token?: string;
  /** Directory to write into (default: a fresh temp dir, removed by cleanup()). */
  dir?: string;
  contextName?: string;
  namespace?: string;
}

export interface WrittenKubeconfig {
  path: string;
  /** The YAML text written. */
  text: string;
  cleanup: () => Promise<void>;
}

export function kubeconfigText(options: Omit<WriteKubeconfigOptions, 'dir'>): string {
  const name = options.contextName ?? 'switchboard-test';
  const user: Record<string, unknown> = options.token === undefined ? {} : { token: options.token };
  const context: Record<string, unknown> = { cluster: name, user: name };
  if (options.namespace) context.namespace = options.namespace;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server: options.server, 'insecure-skip-tls-verify': true } }],
    users: [{ name, user }],
    contexts: [{ name, context }],
    'current-context': name,
    preferences: {},
  });
}

export async function writeKubeconfig(options: WriteKubeconfigOptions): Promise<WrittenKubeconfig> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'switchboard-kubeconfig-')));
  const path = join(dir, 'kubeconfig.yaml');
  const text = kubeconfigText(options);
  await writeFile(path, text, { mode: 0o600 });
  return {
    path,
    text,
    cleanup: async () => {
      await rm(ownDir ? dir : path, { recursive: true, force: true });
    },
  };
}
