import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLUSTER_IDENTITY_PATH,
  kubeHttpFromConfig,
  loadKubeConfig,
  readClusterIdentity,
} from '../../../libs/kube/index.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';

// The cluster identity a planner records in its group's log (probe5 H2): the kube-system
// Namespace's uid, read through the informer's own HTTP client from the test API server, which
// serves the Namespaces every cluster is made with.

let a: KubeApiServer;
let b: KubeApiServer;
let kcA: WrittenKubeconfig;
let kcB: WrittenKubeconfig;
const http = async (kc: WrittenKubeconfig) => kubeHttpFromConfig(await loadKubeConfig({ kubeconfig: kc.path }));
const isIdentityRead = (e: { path: string }) => e.path === CLUSTER_IDENTITY_PATH;

beforeAll(async () => {
  a = await KubeApiServer.start();
  b = await KubeApiServer.start({ token: 'tok' });
  kcA = await writeKubeconfig({ server: a.url });
  kcB = await writeKubeconfig({ server: b.url, token: 'tok' });
});
afterAll(async () => {
  await kcA?.cleanup();
  await kcB?.cleanup();
  await a?.stop();
  await b?.stop();
});

describe('readClusterIdentity', () => {
  it("reads the kube-system Namespace's uid: one per cluster", async () => {
    expect(await readClusterIdentity(await http(kcA), { server: a.url })).toEqual({ uid: a.clusterUid, server: a.url });
    expect(await readClusterIdentity(await http(kcB), { server: b.url })).toEqual({ uid: b.clusterUid, server: b.url });
    expect(a.clusterUid).not.toBe(b.clusterUid);
  });

  it('a refusal is one line naming what to fix, not retried: 403 names the permission, 401 the credentials', async () => {
    const retries: string[] = [];
    a.failNext(1, { status: 403, match: isIdentityRead });
    await expect(
      readClusterIdentity(await http(kcA), { server: a.url, onRetry: (w) => retries.push(w) }),
    ).rejects.toThrow(
      /403 Forbidden.*the planner needs "get" on namespaces, resourceNames \["kube-system"\] \(deploy\/kubernetes\/base\/rbac\.yaml\)$/,
    );
    const noToken = await writeKubeconfig({ server: b.url });
    try {
      await expect(readClusterIdentity(await http(noToken), { server: b.url })).rejects.toThrow(
        /401 Unauthorized.*does not accept the kubeconfig's credentials$/,
      );
    } finally {
      await noToken.cleanup();
    }
    expect(retries).toEqual([]);
  });

  it('a 5xx or 429 is retried with each retry said; no answer at all gives up after withinMs naming the request', async () => {
    const retries: number[] = [];
    a.failNext(2, { status: 503, match: isIdentityRead });
    const got = await readClusterIdentity(await http(kcA), {
      server: a.url,
      onRetry: (_w, n) => retries.push(n),
      sleep: async () => {},
    });
    expect(got.uid).toBe(a.clusterUid);
    expect(retries).toEqual([1, 2]);
    const gone = await KubeApiServer.start();
    const kc = await writeKubeconfig({ server: gone.url });
    await gone.stop();
    try {
      await expect(
        readClusterIdentity(await http(kc), { server: gone.url, withinMs: 600, sleep: async () => {} }),
      ).rejects.toThrow(/ECONNREFUSED.*\(retried for 1 s\)$/);
    } finally {
      await kc.cleanup();
    }
  });
});
