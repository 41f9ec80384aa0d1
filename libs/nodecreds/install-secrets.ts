import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createAccount } from '@nats-io/jwt';
import { stringify } from 'yaml';
import {
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
} from './nats-accounts.ts';

/**
 * The per-install Secrets deploy/kubernetes/base mounts, as one YAML stream for `kubectl apply`.
 * Each Secret holds only what its readers need:
 *  - switchboard-nats-resolver: operator + account JWTs (public) for the NATS servers;
 *  - switchboard-planner: the planner's NATS credential and the HTTP API tokens;
 *  - switchboard-signing-key: the Ed25519 key every planner of the group signs versions with;
 *  - switchboard-credential-issuer: the readers account's signing key (mints node credentials,
 *    cannot mint a planner) and the issuer's own NATS credential;
 *  - switchboard-applier: the planner's public key and the bootstrap credential (may only ask).
 * The operator and account identity keys are not put in the cluster at all.
 */
/** One Secret of the install (stringData), labelled as part of Switchboard. */
function secretDoc(namespace: string, name: string, data: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
    stringData: data,
  };
}

const yamlStream = (docs: readonly object[]) => docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');

/** The NATS servers' resolver: operator and account JWTs (public). */
async function resolverSecret(namespace: string, keys: AccountKeys) {
  return secretDoc(namespace, 'switchboard-nats-resolver', {
    'resolver.conf': renderResolverConfig(await serverResolver(keys)),
  });
}

/** The credential issuer's: the readers account's signing key and public key, its own NATS credential. */
async function issuerSecret(namespace: string, keys: AccountKeys) {
  return secretDoc(namespace, 'switchboard-credential-issuer', {
    'account-signing.nk': keys.readersSigningKeySeed + '\n',
    'account.pub': readersAccountPublicKey(keys) + '\n',
    'issuer.creds': await mintRoleCreds(keys, 'issuer'),
  });
}

export async function renderInstallSecrets(o: {
  namespace: string;
  keys: AccountKeys;
  apiToken?: string;
  /**
   * A rotation of the NATS keys alone keeps what is in force: the planner's public signing key
   * (PEM; then no switchboard-signing-key Secret is rendered, the one in the cluster stays) and
   * the API token file's text. Without them every node would drop targets signed by the old key
   * and every ctl user's token would be revoked (docs/install.md "Rotating the NATS keys").
   */
  keep?: { plannerKeyPub?: string; apiTokens?: string };
}): Promise<string> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signingPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = o.keep?.plannerKeyPub ?? publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const apiToken = o.apiToken ?? randomBytes(24).toString('base64url');
  const secret = (name: string, data: Record<string, string>) => secretDoc(o.namespace, name, data);
  return yamlStream([
    await resolverSecret(o.namespace, o.keys),
    secret('switchboard-planner', {
      'planner.creds': await mintRoleCreds(o.keys, 'planner'),
      'api-tokens': o.keep?.apiTokens ?? `${apiToken} admin operator\n`,
    }),
    ...(o.keep?.plannerKeyPub === undefined
      ? [secret('switchboard-signing-key', { 'planner.key': signingPem, 'planner.key.pub': publicPem })]
      : []),
    await issuerSecret(o.namespace, o.keys),
    secret('switchboard-applier', {
      'planner.key.pub': publicPem,
      'bootstrap.creds': await mintRoleCreds(o.keys, 'bootstrap'),
    }),
  ]);
}

/**
 * The readers account's signing key made anew, all else kept (the operator, both accounts, the
 * Switchboard account's signing key): for a leaked or retired issuer key. The accounts keep their
 * identity, so JetStream's streams and buckets stay where they are (a full `credentials init`
 * makes new accounts, and the planner republishes into an empty NATS). The readers account's JWT
 * then names only the new key: node and observer credentials signed with the old one are refused.
 */
export function withNewReadersSigningKey(keys: AccountKeys): AccountKeys {
  return { ...keys, readersSigningKeySeed: new TextDecoder().decode(createAccount().getSeed()) };
}

/**
 * The two Secrets a readers signing key rotation changes (docs/install.md "Rotating the readers
 * signing key"): the resolver (the readers account's JWT with the new key) and the issuer's (the
 * new key). The planner's, the signing key's and the appliers' Secrets stay as they are in force.
 */
export async function renderReadersKeyRotation(o: { namespace: string; keys: AccountKeys }): Promise<string> {
  return yamlStream([await resolverSecret(o.namespace, o.keys), await issuerSecret(o.namespace, o.keys)]);
}
