import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { JSONWebKeySet } from 'jose';
import { decode } from '@nats-io/jwt';
import { mintNodeJwt } from './nats-accounts.ts';
import { verifyNodeToken, TokenRefused, type TokenPolicy } from './sa-token.ts';
import { CREDENTIALS_REQUEST_SUBJECT, ISSUER_QUEUE } from './subjects.ts';

/** What an applier sends: its node name, its projected token, and a user public key it made. */
export interface CredentialRequest {
  readonly node: string;
  readonly token: string;
  readonly publicKey: string;
}
/**
 * The issuer's answer. `lifetimeSeconds` (the ttl it minted for; absent from issuers before it) is
 * what the node renews by, at half of it: the JWT's own `iat` is stamped by the JWT library with
 * the issuer host's clock, while `exp` is counted from the API server's when that clock is off
 * (issuer-clock.ts), so `exp - iat` was off by the host's skew (an issuer 2 h behind: a node
 * renewed a 10 min credential after 65 min) and by a second when one ticked between the two.
 */
export type CredentialReply =
  | { readonly jwt: string; readonly expiresAt: number; readonly lifetimeSeconds?: number }
  | { readonly error: string };

export interface IssuerOptions {
  /** Read at every request: `credentials serve` passes getters that read its key files (probe16 I3). */
  readonly accountPublicKey: string;
  readonly signingKeySeed: string;
  readonly policy: TokenPolicy;
  /** The API server's service-account signing keys; `refresh` asks again (key rotation). */
  readonly jwks: (o: { refresh: boolean }) => Promise<JSONWebKeySet>;
  /** Whether the Node exists now: a deleted node gets nothing, even with a still-valid token. */
  readonly nodeExists: (name: string) => Promise<boolean>;
  /** Lifetime of a minted node credential (default 1 h); the fetcher renews at half of it. */
  readonly ttlSeconds?: number;
  /** The issuer's time (IssuerClock: the API server's when this host's is off); the wall clock by default. */
  readonly now?: () => Date;
  readonly log?: (line: string) => void;
}

/**
 * Decides one request: the token must be valid for the issuer's audience, belong to the applier
 * service account and name the node asked for; the node must exist. Then a JWT is minted for the
 * requester's public key with that node's permissions only. Errors name the reason (they reach
 * only the requester's inbox).
 */
export async function decideCredentialRequest(raw: Uint8Array | string, o: IssuerOptions): Promise<CredentialReply> {
  let req: CredentialRequest;
  try {
    const text = typeof raw === 'string' ? raw : new TextDecoder().decode(raw);
    req = JSON.parse(text) as CredentialRequest;
    if (!req || typeof req.node !== 'string' || typeof req.token !== 'string' || typeof req.publicKey !== 'string')
      throw new Error('want {node, token, publicKey}');
  } catch (e) {
    return { error: `bad credential request: ${(e as Error).message}` };
  }
  const now = o.now?.() ?? new Date();
  let id;
  try {
    try {
      id = await verifyNodeToken(req.token, await o.jwks({ refresh: false }), o.policy, now);
    } catch (e) {
      // an unknown key id may mean the API server rotated its key: fetch once more
      if (!(e instanceof TokenRefused) || !/no applicable key|key.*not found|JWKSNoMatchingKey/i.test(e.message))
        throw e;
      id = await verifyNodeToken(req.token, await o.jwks({ refresh: true }), o.policy, now);
    }
  } catch (e) {
    return { error: (e as Error).message };
  }
  if (id.node !== req.node) return { error: `token proves node ${id.node}, not ${req.node}` };
  try {
    if (!(await o.nodeExists(id.node))) return { error: `node ${id.node} does not exist` };
  } catch (e) {
    return { error: `cannot check node ${id.node}: ${(e as Error).message}` };
  }
  try {
    const ttl = o.ttlSeconds ?? 3600;
    const jwt = await mintNodeJwt({
      accountPublicKey: o.accountPublicKey,
      signingKeySeed: o.signingKeySeed,
      node: id.node,
      userPublicKey: req.publicKey,
      ttlSeconds: ttl,
      // read again: the Node lookup just checked the clock against the API server's (probe12 L13)
      now: o.now?.() ?? new Date(),
    });
    return { jwt, expiresAt: decode(jwt).exp!, lifetimeSeconds: ttl };
  } catch (e) {
    return { error: `cannot mint: ${(e as Error).message}` };
  }
}

/** Answers credential requests on NATS (a queue group: every issuer replica shares the load). */
export function serveCredentialRequests(nc: NatsConnection, o: IssuerOptions): Subscription {
  return nc.subscribe(CREDENTIALS_REQUEST_SUBJECT, {
    queue: ISSUER_QUEUE,
    callback: (err, m) => {
      if (err) {
        o.log?.(`credential issuer: ${err.message}`);
        return;
      }
      void decideCredentialRequest(m.data, o).then((reply) => {
        o.log?.(
          'error' in reply ? `credential refused: ${reply.error}` : `credential issued for ${decode(reply.jwt).name}`,
        );
        if (m.reply) m.respond(JSON.stringify(reply));
      });
    },
  });
}
