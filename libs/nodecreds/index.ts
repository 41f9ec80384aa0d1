// Public surface of libs/nodecreds: NATS account keys and role credentials, the node credential
// issuer (service-account token -> short-lived NATS user JWT) and the node-side fetcher.
export {
  ACCOUNT_NAME,
  accountPublicKey,
  generateAccountKeys,
  mintNodeCreds,
  mintNodeJwt,
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  rolePermissions,
  serverResolver,
  type AccountKeys,
  type AccountLimits,
  type Role,
  type ServerResolver,
} from './nats-accounts.ts';
export { renderInstallSecrets, renderReadersKeyRotation, withNewReadersSigningKey } from './install-secrets.ts';
export {
  decideCredentialRequest,
  serveCredentialRequests,
  type CredentialReply,
  type CredentialRequest,
  type IssuerOptions,
} from './issuer.ts';
export { kubeJwks, nodeExists } from './kube-lookups.ts';
export { IssuerClock } from './issuer-clock.ts';
export { fetchNodeCredential, keepNodeCredentialFresh, type FetcherOptions } from './fetcher.ts';
export { TokenRefused, verifyNodeToken, type ProvenIdentity, type TokenPolicy } from './sa-token.ts';
export { BOOTSTRAP_INBOX_PREFIX, CREDENTIALS_REQUEST_SUBJECT, ISSUER_QUEUE } from './subjects.ts';
