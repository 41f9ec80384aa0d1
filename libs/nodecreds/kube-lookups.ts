import type { JSONWebKeySet } from 'jose';
import { KubeApiError } from '../kube/index.ts';
import type { KubeHttp } from '../kube/index.ts';
import type { IssuerClock } from './issuer-clock.ts';

/**
 * GET /api/v1/nodes/NAME (the planner's ClusterRole allows it): false on 404, throws on anything
 * else. With a clock, the answer's Date header checks the issuer's clock (probe12 L13).
 */
export async function nodeExists(http: KubeHttp, name: string, clock?: IssuerClock): Promise<boolean> {
  try {
    await http.getJson({
      path: `/api/v1/nodes/${encodeURIComponent(name)}`,
      idleTimeoutMs: 10_000,
      onServerDate: clock?.learnFrom(),
    });
    return true;
  } catch (e) {
    if (e instanceof KubeApiError && e.code === 404) return false;
    throw e;
  }
}

/**
 * The API server's service-account signing keys (/openid/v1/jwks, readable by every service
 * account through the default system:service-account-issuer-discovery binding; it is a
 * non-resource URL, outside the planner's ClusterRole). Cached; `refresh` fetches again, at most
 * once every 10 s, so a stream of tokens with unknown key ids cannot hammer the API server.
 */
export function kubeJwks(http: KubeHttp): (o: { refresh: boolean }) => Promise<JSONWebKeySet> {
  let cached: JSONWebKeySet | undefined;
  let fetchedAt = 0;
  return async ({ refresh }) => {
    if (cached && (!refresh || Date.now() - fetchedAt < 10_000)) return cached;
    const doc = (await http.getJson({ path: '/openid/v1/jwks', idleTimeoutMs: 10_000 })) as JSONWebKeySet;
    if (!doc || !Array.isArray(doc.keys)) throw new Error('/openid/v1/jwks is not a JWK set');
    cached = doc;
    fetchedAt = Date.now();
    return doc;
  };
}
