import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';

/**
 * Which node a pod runs on, proven by its projected service-account token. Since Kubernetes 1.30
 * (ServiceAccountTokenPodNodeInfo) a pod-bound token carries `kubernetes.io.node.name`, signed by
 * the API server's service-account key: the kubelet of node X only ever obtains tokens for pods
 * bound to X, so a pod on node A cannot hold a token naming node B.
 */
export interface TokenPolicy {
  /** The audience the applier's projected token is requested for (never the API server's own). */
  readonly audience: string;
  /** namespace:name of the applier's service account; tokens of any other account are refused. */
  readonly serviceAccount: string;
  /** Expected `iss`; unset = any issuer whose key is in the JWKS. */
  readonly issuer?: string;
}

export interface ProvenIdentity {
  readonly node: string;
  readonly pod: string;
  readonly expiresAt: number;
}

export class TokenRefused extends Error {}

/** Seconds of clock difference between the API server and the issuer tolerated on nbf and exp. */
export const TOKEN_CLOCK_TOLERANCE_S = 60;

export async function verifyNodeToken(
  token: string,
  jwks: JSONWebKeySet,
  p: TokenPolicy,
  now?: Date,
): Promise<ProvenIdentity> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token.trim(), createLocalJWKSet(jwks), {
      audience: p.audience,
      ...(p.issuer ? { issuer: p.issuer } : {}),
      algorithms: ['RS256', 'ES256', 'ES384', 'RS384', 'RS512', 'PS256'],
      requiredClaims: ['exp', 'sub'],
      // the API server's clock stamps nbf/exp, the issuer's checks them: a pod uses its token at once,
      // so an issuer seconds behind refused every fresh token (probe12 L12); kube allows skew too
      clockTolerance: TOKEN_CLOCK_TOLERANCE_S,
      ...(now ? { currentDate: now } : {}),
    }));
  } catch (e) {
    throw new TokenRefused(`service-account token refused: ${(e as Error).message}`);
  }
  const want = `system:serviceaccount:${p.serviceAccount}`;
  if (payload.sub !== want) throw new TokenRefused(`service-account token is for ${String(payload.sub)}, not ${want}`);
  const k8s = payload['kubernetes.io'] as { node?: { name?: unknown }; pod?: { name?: unknown } } | undefined;
  const node = k8s?.node?.name;
  if (typeof node !== 'string' || node === '')
    throw new TokenRefused('service-account token names no node (needs a pod-bound token, Kubernetes 1.30+)');
  const pod = typeof k8s?.pod?.name === 'string' ? k8s.pod.name : '';
  if (!pod) throw new TokenRefused('service-account token is not bound to a pod');
  return { node, pod, expiresAt: Number(payload.exp) };
}
