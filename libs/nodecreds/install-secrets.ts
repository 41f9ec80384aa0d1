import { generateKeyPairSync, randomBytes } from 'node:crypto';
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
  const secret = (name: string, data: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name, namespace: o.namespace, labels: { 'app.kubernetes.io/part-of': 'switchboard' } },
    stringData: data,
  });
  const docs = [
    secret('switchboard-nats-resolver', { 'resolver.conf': renderResolverConfig(await serverResolver(o.keys)) }),
    secret('switchboard-planner', {
      'planner.creds': await mintRoleCreds(o.keys, 'planner'),
      'api-tokens': o.keep?.apiTokens ?? `${apiToken} admin operator\n`,
    }),
    ...(o.keep?.plannerKeyPub === undefined
      ? [secret('switchboard-signing-key', { 'planner.key': signingPem, 'planner.key.pub': publicPem })]
      : []),
    secret('switchboard-credential-issuer', {
      'account-signing.nk': o.keys.readersSigningKeySeed + '\n',
      'account.pub': readersAccountPublicKey(o.keys) + '\n',
      'issuer.creds': await mintRoleCreds(o.keys, 'issuer'),
    }),
    secret('switchboard-applier', {
      'planner.key.pub': publicPem,
      'bootstrap.creds': await mintRoleCreds(o.keys, 'bootstrap'),
    }),
  ];
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}
